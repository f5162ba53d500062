//! What the consumer does with a message once its handling is over: ack it, send it to a retry
//! tier, or dead-letter it. A pure function of what happened and the retry settings, so every
//! row of the table is tested without a broker; the consumer only carries the decision out.
//!
//! | outcome                                   | decision                                           |
//! |-------------------------------------------|----------------------------------------------------|
//! | handled                                   | ack                                                |
//! | transient failure or timeout, attempts left | the tier for this attempt, its delay with jitter |
//! | the same, with a `retry_after`            | the first tier at least that long from the attempt's on, never sooner than asked; beyond every tier, the longest tier's longest delay |
//! | transient failure or timeout, none left   | dead letter, kind `retries_exhausted`              |
//! | permanent failure, sender refused         | dead letter, kind `permanent`                      |
//! | invalid input, unreadable properties or body | dead letter, kind `invalid_input`               |
//! | handler panicked                          | dead letter, kind `handler_panicked`               |

use std::time::Duration;

use contracts::metadata::ErrorKind;
use contracts::{FailureKind, RetryTier};

/// How one handling ended, as far as the decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's work is committed.
    Handled,
    /// The properties or body could not be read, or the body is too large.
    Unreadable,
    /// The sender may not send this message (the [`super::SenderPolicy`] said no).
    Refused,
    /// The handler failed with this kind. A handler that did not finish in time failed
    /// transiently.
    Failed(FailureKind),
    /// The handler panicked.
    Panicked,
}

/// The retry settings the decision follows.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy<'a> {
    /// Handling attempts before a transiently failing message is dead-lettered.
    pub max_attempts: u32,
    /// The delayed-retry tiers, shortest delay first (as [`contracts::Topology`] keeps them).
    pub tiers: &'a [RetryTier],
    /// Random spread of a tier's delay, as a fraction (0.2 = ±20%); clamped to 0..=0.9.
    pub jitter: f64,
}

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Done: acknowledge it.
    Ack,
    /// Handle it again later: publish it to retry tier `tier` (0-based) with this TTL.
    Retry {
        /// Failed handlings so far, this one included.
        attempts: u32,
        /// The tier's index in [`RetryPolicy::tiers`].
        tier: usize,
        /// The message's TTL in the tier.
        delay: Duration,
    },
    /// Give up: publish it to the dead-letter exchange.
    DeadLetter {
        /// Failed handlings so far, this one included.
        attempts: u32,
        /// Why, as the dead letter's `x-hub-error-kind` says.
        kind: ErrorKind,
    },
}

/// Decides what becomes of a message that failed `previous_failures` times before and ended
/// this time with `outcome`. `retry_after` is how long the failing system asked to be left
/// alone; `jitter_sample` is a uniform random number in `0.0..=1.0` (0.5 means no spread).
pub fn decide(
    outcome: Outcome,
    previous_failures: u32,
    retry_after: Option<Duration>,
    policy: &RetryPolicy<'_>,
    jitter_sample: f64,
) -> Decision {
    let attempts = previous_failures.saturating_add(1);
    let kind = match outcome {
        Outcome::Handled => return Decision::Ack,
        Outcome::Unreadable | Outcome::Failed(FailureKind::InvalidInput) => ErrorKind::InvalidInput,
        Outcome::Refused | Outcome::Failed(FailureKind::Permanent) => ErrorKind::Permanent,
        Outcome::Panicked => ErrorKind::HandlerPanicked,
        Outcome::Failed(FailureKind::Transient) => {
            if attempts < policy.max_attempts
                && let Some(tier) = tier_for(attempts, retry_after, policy.tiers)
            {
                let tier_delay = policy.tiers[tier].delay;
                let nominal = jittered(tier_delay, policy.jitter, jitter_sample);
                // Jitter may shorten a tier's delay; what the system asked for is a floor. The
                // tier's longest delay is a ceiling: the broker expires a tier queue's messages
                // from its head only, so one message waiting a day would hold back every retry
                // behind it. An ask beyond the longest tier is met again at the next attempt.
                let ceiling = jittered(tier_delay, policy.jitter, 1.0);
                let delay = retry_after.map_or(nominal, |asked| nominal.max(asked).min(ceiling));
                return Decision::Retry {
                    attempts,
                    tier,
                    delay,
                };
            }
            ErrorKind::RetriesExhausted
        }
    };
    Decision::DeadLetter { attempts, kind }
}

/// The tier after the `attempts`-th failure: the n-th tier for the n-th failure, then the last;
/// when the system asked for a longer pause than that tier's, the first later tier at least
/// that long, else the longest. `None` when there is no tier at all.
fn tier_for(attempts: u32, retry_after: Option<Duration>, tiers: &[RetryTier]) -> Option<usize> {
    let last = tiers.len().checked_sub(1)?;
    let by_attempt = (attempts.saturating_sub(1) as usize).min(last);
    let Some(asked) = retry_after.filter(|asked| *asked > tiers[by_attempt].delay) else {
        return Some(by_attempt);
    };
    let long_enough = (by_attempt..=last).find(|&i| tiers[i].delay >= asked);
    Some(long_enough.unwrap_or_else(|| longest(tiers)))
}

/// The index of the tier with the longest delay (the last of equals).
fn longest(tiers: &[RetryTier]) -> usize {
    tiers
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| t.delay)
        .map_or(0, |(i, _)| i)
}

/// `delay` spread by `jitter` (a fraction): `sample` 0.0 gives the shortest, 1.0 the longest.
pub(crate) fn jittered(delay: Duration, jitter: f64, sample: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.9);
    if jitter == 0.0 {
        return delay;
    }
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    delay.mul_f64(1.0 - jitter + 2.0 * jitter * sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn tiers() -> Vec<RetryTier> {
        [1, 10, 60]
            .into_iter()
            .map(|s| RetryTier { delay: SECOND * s })
            .collect()
    }

    fn policy(tiers: &[RetryTier]) -> RetryPolicy<'_> {
        RetryPolicy {
            max_attempts: 5,
            tiers,
            jitter: 0.2,
        }
    }

    /// No spread: `sample` 0.5 is the nominal delay.
    const MIDDLE: f64 = 0.5;

    fn transient() -> Outcome {
        Outcome::Failed(FailureKind::Transient)
    }

    #[test]
    fn a_handled_message_is_acked() {
        let t = tiers();
        assert_eq!(
            decide(Outcome::Handled, 3, None, &policy(&t), MIDDLE),
            Decision::Ack
        );
    }

    #[test]
    fn a_transient_failure_with_attempts_left_goes_to_the_tier_of_its_attempt() {
        let t = tiers();
        let retry = |previous| decide(transient(), previous, None, &policy(&t), MIDDLE);
        assert_eq!(
            retry(0),
            Decision::Retry {
                attempts: 1,
                tier: 0,
                delay: SECOND
            }
        );
        assert_eq!(
            retry(1),
            Decision::Retry {
                attempts: 2,
                tier: 1,
                delay: SECOND * 10
            }
        );
        // Past the tiers, the last one again.
        assert_eq!(
            retry(3),
            Decision::Retry {
                attempts: 4,
                tier: 2,
                delay: SECOND * 60
            }
        );
    }

    #[test]
    fn a_transient_failure_with_no_attempts_left_is_dead_lettered_as_exhausted() {
        let t = tiers();
        assert_eq!(
            decide(transient(), 4, None, &policy(&t), MIDDLE),
            Decision::DeadLetter {
                attempts: 5,
                kind: ErrorKind::RetriesExhausted
            }
        );
        // One attempt allowed: the first failure is the last.
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy(&t)
        };
        assert_eq!(
            decide(transient(), 0, Some(SECOND), &once, MIDDLE),
            Decision::DeadLetter {
                attempts: 1,
                kind: ErrorKind::RetriesExhausted
            }
        );
    }

    #[test]
    fn permanent_invalid_refused_unreadable_and_panics_are_dead_lettered_at_once() {
        let t = tiers();
        let dead = |outcome| decide(outcome, 0, Some(SECOND), &policy(&t), MIDDLE);
        for (outcome, kind) in [
            (
                Outcome::Failed(FailureKind::Permanent),
                ErrorKind::Permanent,
            ),
            (Outcome::Refused, ErrorKind::Permanent),
            (
                Outcome::Failed(FailureKind::InvalidInput),
                ErrorKind::InvalidInput,
            ),
            (Outcome::Unreadable, ErrorKind::InvalidInput),
            (Outcome::Panicked, ErrorKind::HandlerPanicked),
        ] {
            assert_eq!(
                dead(outcome),
                Decision::DeadLetter { attempts: 1, kind },
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_retry_after_longer_than_the_attempts_tier_goes_to_the_first_tier_that_long() {
        let t = tiers();
        // First failure (tier 0, 1 s), asked for 5 s: tier 1 (10 s).
        assert_eq!(
            decide(transient(), 0, Some(SECOND * 5), &policy(&t), MIDDLE),
            Decision::Retry {
                attempts: 1,
                tier: 1,
                delay: SECOND * 10
            }
        );
        // Exactly a tier's delay is long enough.
        assert_eq!(
            decide(transient(), 0, Some(SECOND * 10), &policy(&t), MIDDLE),
            Decision::Retry {
                attempts: 1,
                tier: 1,
                delay: SECOND * 10
            }
        );
        // A shorter ask than the attempt's tier changes nothing: never an earlier tier.
        assert_eq!(
            decide(transient(), 2, Some(SECOND * 5), &policy(&t), MIDDLE),
            Decision::Retry {
                attempts: 3,
                tier: 2,
                delay: SECOND * 60
            }
        );
    }

    #[test]
    fn a_retry_after_longer_than_every_tier_waits_the_longest_tiers_longest_delay() {
        let t = tiers();
        for sample in [0.0, MIDDLE, 1.0] {
            assert_eq!(
                decide(transient(), 0, Some(SECOND * 300), &policy(&t), sample),
                Decision::Retry {
                    attempts: 1,
                    tier: 2,
                    // 60 s + 20 % jitter: no message holds a tier queue's head for longer.
                    delay: SECOND * 72
                }
            );
        }
    }

    #[test]
    fn jitter_never_makes_a_retry_sooner_than_asked() {
        let t = tiers();
        for sample in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let Decision::Retry { tier, delay, .. } =
                decide(transient(), 0, Some(SECOND * 9), &policy(&t), sample)
            else {
                panic!("a retry");
            };
            assert_eq!(tier, 1);
            assert!(delay >= SECOND * 9, "{sample}: {delay:?}");
            assert!(delay <= SECOND * 12, "{sample}: {delay:?}");
        }
    }

    #[test]
    fn without_tiers_a_transient_failure_is_dead_lettered() {
        assert_eq!(
            decide(transient(), 0, None, &policy(&[]), MIDDLE),
            Decision::DeadLetter {
                attempts: 1,
                kind: ErrorKind::RetriesExhausted
            }
        );
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let base = SECOND;
        assert_eq!(jittered(base, 0.2, 0.0), Duration::from_millis(800));
        assert_eq!(jittered(base, 0.2, 0.5), base);
        assert_eq!(jittered(base, 0.2, 1.0), Duration::from_millis(1200));
        assert_eq!(jittered(base, 0.2, f64::NAN), base);
        assert_eq!(jittered(base, 0.0, 0.0), base);
        for i in 0..=100 {
            let d = jittered(base, 0.2, f64::from(i) / 100.0);
            assert!((800..=1200).contains(&d.as_millis()), "{d:?}");
        }
    }
}
