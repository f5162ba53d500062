//! The console-wide bound on password checks, whatever the names.
//!
//! The lock-out ([`super::auth::Limiter`]) counts failures per name, so a spray of many names
//! (each guessed a few times) passes it, and every guess costs an argon2 hash on purpose. This
//! token bucket caps the checks of the whole console: `per_second` tokens a second, at most one
//! second's worth kept, one token per password checked. A login without a token is refused
//! before its hash (429 with `Retry-After`). It is a few lines of arithmetic under a mutex, with
//! the time given by the caller, so it is tested without sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket of password checks.
#[derive(Debug)]
pub(super) struct LoginRate {
    per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left at `at`.
    tokens: f64,
    at: Instant,
}

impl LoginRate {
    /// `per_second` checks a second (at least 1), the bucket full at `now`.
    pub(super) fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        LoginRate {
            per_second,
            bucket: Mutex::new(Bucket {
                tokens: per_second,
                at: now,
            }),
        }
    }

    /// Takes a token for one password check at `now`, or says how long until one is free.
    pub(super) fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        // Callers read the clock before they queue on the mutex: time never runs backwards here.
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.per_second);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
    }
}

/// A wait as the page and `Retry-After` say it: whole seconds, at least 1.
pub(super) fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(wait: Duration, seconds: f64) -> bool {
        (wait.as_secs_f64() - seconds).abs() < 1e-6
    }

    #[test]
    fn a_second_s_worth_of_checks_then_one_per_token() {
        let t0 = Instant::now();
        let rate = LoginRate::new(5, t0);
        for i in 0..5 {
            assert_eq!(rate.take(t0), Ok(()), "check {i} of the burst");
        }
        let wait = rate.take(t0).expect_err("the bucket is empty");
        assert!(close(wait, 0.2), "{wait:?}");
        assert_eq!(whole_seconds(wait), 1);
        // A token comes back every 200 ms, and no more than a second's worth is kept.
        assert_eq!(rate.take(t0 + Duration::from_millis(200)), Ok(()));
        assert!(rate.take(t0 + Duration::from_millis(300)).is_err());
        let later = t0 + Duration::from_secs(3600);
        let taken = (0..100).filter(|_| rate.take(later).is_ok()).count();
        assert_eq!(taken, 5, "the burst stays one second's worth");
        // An earlier instant (a caller that read the clock before waiting on the lock) takes
        // nothing back.
        assert!(rate.take(t0).is_err());
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait() {
        let t0 = Instant::now();
        let rate = LoginRate::new(1, t0);
        assert_eq!(rate.take(t0), Ok(()));
        let wait = rate
            .take(t0 + Duration::from_millis(100))
            .expect_err("empty");
        assert!(close(wait, 0.9), "{wait:?}");
        assert_eq!(whole_seconds(wait), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(LoginRate::new(0, t0).take(t0), Ok(()), "0 is taken as 1");
    }
}
