//! How much the simulators remember. Every store that grows with the traffic (the operators'
//! messages and the phones' inboxes, the mail sink, ERIP's invoices, the back-offices' books,
//! the idempotency keys) is a [`Bounded`] map: it keeps at most a configured number of records,
//! none older than a configured age, and drops the oldest first. A simulator left running for
//! days therefore stays at a flat size; what a test or the hub asks about inside the bounds is
//! answered as before, and a dropped record answers as one the simulator never had.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;

/// The records each store keeps when none is given ([`Retention::records`]).
pub const DEFAULT_KEEP_RECORDS: usize = 100_000;

/// The idempotency keys each simulator keeps when none is given ([`Retention::keys`]).
pub const DEFAULT_KEEP_KEYS: usize = 200_000;

/// How long records and keys are kept when nothing else is given: a day.
pub const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// The environment variable that overrides [`Retention::records`] (`--keep-records`).
pub const ENV_KEEP_RECORDS: &str = "SIM_KEEP_RECORDS";

/// The environment variable that overrides [`Retention::keys`] (`--keep-keys`).
pub const ENV_KEEP_KEYS: &str = "SIM_KEEP_KEYS";

/// The environment variable that overrides [`Retention::max_age`] (`--keep-for`).
pub const ENV_KEEP_FOR: &str = "SIM_KEEP_FOR";

/// How much every store of a simulator keeps. Each store counts on its own: an operator's
/// messages, the phones' inboxes (all phones together), the mail sink, ERIP's invoices, one
/// authority's applications, its complaints, its refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most records one store keeps; the oldest go first. At least 1.
    pub records: usize,
    /// The most idempotency keys one simulator keeps; the oldest go first. At least 1.
    pub keys: usize,
    /// The oldest a record or a key may be (from when it was stored); older ones are dropped.
    pub max_age: Duration,
}

impl Default for Retention {
    /// [`DEFAULT_KEEP_RECORDS`] records, [`DEFAULT_KEEP_KEYS`] keys, for [`DEFAULT_KEEP_FOR`].
    fn default() -> Self {
        Retention {
            records: DEFAULT_KEEP_RECORDS,
            keys: DEFAULT_KEEP_KEYS,
            max_age: DEFAULT_KEEP_FOR,
        }
    }
}

/// A retention setting that cannot be used; the message names the setting and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct BadRetention {
    /// The flag or variable (`SIM_KEEP_FOR`, `--keep-records`).
    pub setting: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl Retention {
    /// These settings, with those the environment gives ([`ENV_KEEP_RECORDS`],
    /// [`ENV_KEEP_KEYS`], [`ENV_KEEP_FOR`]) instead.
    ///
    /// Errors: a variable is set but is no count of at least 1, or no age (`90s`, `30m`, `24h`,
    /// `7d`).
    pub fn with_env(self) -> Result<Retention, BadRetention> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut retention = self;
        if let Some(value) = var(ENV_KEEP_RECORDS) {
            retention.records = parse_count(&value).map_err(|reason| BadRetention {
                setting: ENV_KEEP_RECORDS.to_owned(),
                reason,
            })?;
        }
        if let Some(value) = var(ENV_KEEP_KEYS) {
            retention.keys = parse_count(&value).map_err(|reason| BadRetention {
                setting: ENV_KEEP_KEYS.to_owned(),
                reason,
            })?;
        }
        if let Some(value) = var(ENV_KEEP_FOR) {
            retention.max_age = parse_age(&value).map_err(|reason| BadRetention {
                setting: ENV_KEEP_FOR.to_owned(),
                reason,
            })?;
        }
        Ok(retention)
    }

    /// The bound of a store of records.
    pub fn records_limit(&self) -> Limit {
        Limit::new(self.records, self.max_age)
    }

    /// The bound of a simulator's idempotency keys.
    pub fn keys_limit(&self) -> Limit {
        Limit::new(self.keys, self.max_age)
    }
}

/// A count of records: a whole number of at least 1 (`_` between digits allowed: `100_000`).
///
/// Errors: the reason, for a message that names the setting.
pub fn parse_count(value: &str) -> Result<usize, String> {
    let digits: String = value.trim().chars().filter(|c| *c != '_').collect();
    match digits.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (a store that keeps nothing cannot be asked)".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{value:?} is not a whole number")),
    }
}

/// An age: a whole number with a unit, `s`, `m`, `h` or `d` (`90s`, `30m`, `24h`, `7d`), at
/// least a second.
///
/// Errors: the reason, for a message that names the setting.
pub fn parse_age(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let bad = || format!("{value:?} is not an age such as 90s, 30m, 24h or 7d");
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit_secs) {
        Some(0) => Err("must be at least 1s".to_owned()),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("{value:?} is too long")),
    }
}

/// The bound of one [`Bounded`] store: at most `count` entries, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The most entries kept (at least 1).
    pub count: usize,
    /// The oldest an entry may be.
    pub max_age: Duration,
}

impl Limit {
    /// At most `count` entries (1 if 0 is given), none older than `max_age`.
    pub fn new(count: usize, max_age: Duration) -> Self {
        Limit {
            count: count.max(1),
            max_age,
        }
    }
}

/// A map that remembers the order its entries came in and keeps at most a [`Limit`] of them:
/// the oldest goes first once there are too many, and an entry older than the limit's age is
/// neither seen nor kept. Reading skips an entry that is too old; [`Bounded::insert`] and
/// [`Bounded::expire`] remove them and hand them back, so that an owner keeping an index
/// beside it can follow.
///
/// Inserting a key that is there already replaces its value and makes it the newest.
pub struct Bounded<K, V> {
    limit: Limit,
    entries: LinkedHashMap<K, (Instant, V)>,
}

impl<K: fmt::Debug + Hash + Eq, V> fmt::Debug for Bounded<K, V> {
    /// The limit and the number of entries, not the entries (they may be personal data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("limit", &self.limit)
            .field("len", &self.entries.len())
            .finish()
    }
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// An empty map bounded by `limit`.
    pub fn new(limit: Limit) -> Self {
        Bounded {
            limit,
            entries: LinkedHashMap::new(),
        }
    }

    /// Its bound.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Stores `value` under `key` as the newest entry, then drops what is too old or too many,
    /// oldest first; returns what it dropped (never the new entry).
    pub fn insert(&mut self, key: K, value: V) -> Vec<(K, V)> {
        self.insert_at(key, value, Instant::now())
    }

    /// [`Self::insert`] as of `now`.
    pub fn insert_at(&mut self, key: K, value: V, now: Instant) -> Vec<(K, V)> {
        self.entries.remove(&key);
        let mut dropped = self.expire_at(now);
        while self.entries.len() >= self.limit.count {
            match self.entries.pop_front() {
                Some((k, (_, v))) => dropped.push((k, v)),
                None => break,
            }
        }
        self.entries.insert(key, (now, value));
        dropped
    }

    /// Drops every entry older than the limit's age; returns them, oldest first.
    pub fn expire(&mut self) -> Vec<(K, V)> {
        self.expire_at(Instant::now())
    }

    /// [`Self::expire`] as of `now`.
    pub fn expire_at(&mut self, now: Instant) -> Vec<(K, V)> {
        let mut dropped = Vec::new();
        while let Some((_, (stored, _))) = self.entries.front() {
            if !self.too_old(*stored, now) {
                break;
            }
            if let Some((k, (_, v))) = self.entries.pop_front() {
                dropped.push((k, v));
            }
        }
        dropped
    }

    fn too_old(&self, stored: Instant, now: Instant) -> bool {
        now.saturating_duration_since(stored) > self.limit.max_age
    }

    /// The value under `key`, unless it was dropped or is too old.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        self.entries
            .get(key)
            .filter(|(stored, _)| !self.too_old(*stored, now))
            .map(|(_, v)| v)
    }

    /// The value under `key` to change (it keeps its place and age), unless it was dropped or
    /// is too old.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let max_age = self.limit.max_age;
        self.entries
            .get_mut(key)
            .filter(|(stored, _)| now.saturating_duration_since(*stored) <= max_age)
            .map(|(_, v)| v)
    }

    /// Whether `key` is there and not too old.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Removes `key`'s entry; returns its value if it had one (too old or not).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key).map(|(_, v)| v)
    }

    /// The entries that are not too old, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let now = Instant::now();
        self.entries
            .iter()
            .filter(move |(_, (stored, _))| !self.too_old(*stored, now))
            .map(|(k, (_, v))| (k, v))
    }

    /// The entries that are not too old, oldest first, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        let now = Instant::now();
        let max_age = self.limit.max_age;
        self.entries
            .iter_mut()
            .filter(move |(_, (stored, _))| now.saturating_duration_since(*stored) <= max_age)
            .map(|(k, (_, v))| (k, v))
    }

    /// How many entries it holds (those too old but not yet dropped included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn keys<V>(map: &Bounded<u32, V>) -> Vec<u32> {
        map.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn past_its_count_the_oldest_go_first_and_the_newest_stay() {
        let mut map = Bounded::new(Limit::new(3, HOUR));
        for i in 1..=3 {
            assert!(map.insert(i, i * 10).is_empty());
        }
        let dropped = map.insert(4, 40);
        assert_eq!(dropped, vec![(1, 10)]);
        let dropped = map.insert(5, 50);
        assert_eq!(dropped, vec![(2, 20)]);
        assert_eq!(keys(&map), vec![3, 4, 5]);
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&1), None, "the oldest is gone");
        assert_eq!(map.get(&5), Some(&50), "the newest is kept");
    }

    #[test]
    fn a_key_stored_again_becomes_the_newest() {
        let mut map = Bounded::new(Limit::new(2, HOUR));
        map.insert(1, "a");
        map.insert(2, "b");
        assert!(
            map.insert(1, "a2").is_empty(),
            "a replacement drops nothing"
        );
        assert_eq!(map.insert(3, "c"), vec![(2, "b")]);
        assert_eq!(keys(&map), vec![1, 3]);
        assert_eq!(map.get(&1), Some(&"a2"));
    }

    #[test]
    fn past_its_age_an_entry_is_neither_seen_nor_kept() {
        let now = Instant::now();
        let long_ago = now.checked_sub(2 * HOUR).expect("a past instant");
        let mut map = Bounded::new(Limit::new(10, HOUR));
        map.insert_at(1, "old", long_ago);
        assert_eq!(map.get(&1), None, "too old to be seen");
        assert!(!map.contains_key(&1));
        assert_eq!(map.get_mut(&1), None);
        assert_eq!(map.iter().count(), 0);
        assert_eq!(map.len(), 1, "seen no more, not yet dropped");
        assert_eq!(map.expire_at(now), vec![(1, "old")]);
        assert!(map.is_empty());
        assert!(map.insert_at(2, "new", now).is_empty());
        assert_eq!(map.get(&2), Some(&"new"));
        // An insert drops what is too old by its own time.
        let later = now + 2 * HOUR;
        assert_eq!(map.insert_at(3, "newer", later), vec![(2, "new")]);
        assert_eq!(keys(&map), vec![3]);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn changes_keep_the_place_and_removals_free_it() {
        let mut map = Bounded::new(Limit::new(2, HOUR));
        map.insert(1, 1);
        map.insert(2, 2);
        *map.get_mut(&1).expect("kept") += 10;
        for (_, v) in map.iter_mut() {
            *v += 1;
        }
        assert_eq!(
            map.insert(3, 3),
            vec![(1, 12)],
            "a change does not make it newer"
        );
        assert_eq!(map.remove(&2), Some(3));
        assert!(map.insert(4, 4).is_empty(), "room after a removal");
        assert_eq!(keys(&map), vec![3, 4]);
        assert!(!map.is_empty());
    }

    #[test]
    fn a_count_of_zero_keeps_one() {
        let mut map = Bounded::new(Limit::new(0, HOUR));
        map.insert(1, ());
        assert_eq!(map.insert(2, ()), vec![(1, ())]);
        assert_eq!(map.limit().count, 1);
    }

    #[test]
    fn counts_and_ages_parse_or_say_why_not() {
        assert_eq!(parse_count("5000"), Ok(5000));
        assert_eq!(parse_count(" 100_000 "), Ok(100_000));
        assert!(parse_count("0").is_err_and(|e| e.contains("at least 1")));
        assert!(parse_count("many").is_err_and(|e| e.contains("whole number")));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_age("0s").is_err_and(|e| e.contains("at least 1s")));
        for bad in ["", "24", "h", "1.5h", "1w", "-1h"] {
            assert!(parse_age(bad).is_err(), "{bad:?} parsed");
        }
    }
}
