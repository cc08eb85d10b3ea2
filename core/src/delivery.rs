//! What to do with a sealed batch after an attempt to send it — decided here, without I/O, for
//! every runtime. The native sender thread (`worker.rs`) and a thread-less host's `fetch` loop (the
//! WASM package) both feed in the outcome of an attempt and the time on their clock, and do what
//! comes out: count it delivered, wait and retry, spool it or give up, keep it for a later flush.
//!
//! The rules:
//! - 2xx is delivered; a permanent refusal (other 4xx) is given up at once: the same bytes cannot
//!   succeed, and keeping them would only fill the spool.
//! - A transient failure waits for the server's `Retry-After`, else a full-jitter backoff
//!   ([`RetryPolicy::backoff`]), and tries again — until the time spent on the batch (attempts plus
//!   waits, counted per batch, so a batch kept between a host's flushes is not charged for the time
//!   between them) would exceed [`RetryPolicy::max_elapsed`]. Then the batch is exhausted: spooled
//!   when there is a spool, otherwise given up.
//! - Once one batch is exhausted the sender is degraded for `max_elapsed`: later batches get a
//!   single attempt each until one is delivered, so an outage does not queue minutes of retries
//!   behind every batch.
//! - A caller with a deadline (a host's flush) is told to keep the batch when its next attempt
//!   would fall after the deadline — checked before the budget, so a host without a spool keeps a
//!   batch the server asked to retry later than its flush lasts.

use std::time::Duration;

use crate::transport::{RetryPolicy, SendOutcome};

/// What to do next with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The collector acknowledged it.
    Delivered,
    /// Refused for good: count it as failed.
    Rejected,
    /// Wait this long, then try again.
    RetryIn(Duration),
    /// Out of retry budget (or the sender is degraded): spool it, or count it as failed.
    Exhausted,
    /// The next attempt would be after the caller's deadline: keep it for a later call.
    Deferred,
}

/// One batch's history: attempts made and time charged to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Attempts made so far.
    pub attempts: u32,
    /// Time spent on attempts and on waits between them.
    pub spent: Duration,
}

/// The sender-wide state: the policy and whether it is degraded. `now` is any monotonic clock of
/// the driver's, the same one in every call.
#[derive(Clone, Debug)]
pub struct Delivery {
    policy: RetryPolicy,
    degraded_until: Option<Duration>,
}

impl Delivery {
    /// A sender that is not degraded.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy, degraded_until: None }
    }

    /// The retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// True while batches get a single attempt each.
    pub fn is_degraded(&self, now: Duration) -> bool {
        self.degraded_until.is_some_and(|t| now < t)
    }

    /// Decides after an attempt that ended in `outcome` and took `took`. `deadline` is when the
    /// caller stops sending (a host's flush), `None` for a sender that runs until shut down;
    /// `random` is uniform in `[0, 1)` for the jitter.
    pub fn after_attempt(
        &mut self,
        progress: &mut Progress,
        outcome: &SendOutcome,
        took: Duration,
        now: Duration,
        deadline: Option<Duration>,
        random: f64,
    ) -> Step {
        progress.attempts = progress.attempts.saturating_add(1);
        progress.spent = progress.spent.saturating_add(took);
        match outcome {
            SendOutcome::Delivered => {
                self.degraded_until = None;
                Step::Delivered
            }
            SendOutcome::Reject { .. } => Step::Rejected,
            SendOutcome::Retry { after, .. } => {
                let wait = after.unwrap_or_else(|| self.policy.backoff(progress.attempts, random));
                // The deadline first: a host without a spool keeps a batch it cannot retry in time
                // (a Retry-After past the flush) rather than give it up.
                if deadline.is_some_and(|d| now.saturating_add(wait) >= d) {
                    return Step::Deferred;
                }
                if self.is_degraded(now) || progress.spent.saturating_add(wait) > self.policy.max_elapsed {
                    self.degraded_until = Some(now.saturating_add(self.policy.max_elapsed));
                    return Step::Exhausted;
                }
                progress.spent = progress.spent.saturating_add(wait);
                Step::RetryIn(wait)
            }
        }
    }

    /// When to try the spool again after `failures` replay attempts in a row failed: the backoff
    /// ceiling (no jitter: there is one spool per process), or the server's `Retry-After`.
    pub fn spool_retry_in(&self, failures: u32, after: Option<Duration>) -> Duration {
        after.unwrap_or_else(|| self.policy.ceiling(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn retry(after: Option<Duration>) -> SendOutcome {
        SendOutcome::Retry { after, reason: "HTTP 503".into() }
    }

    fn policy(max_elapsed_ms: u64) -> RetryPolicy {
        RetryPolicy { max_elapsed: MS * u32::try_from(max_elapsed_ms).unwrap(), ..RetryPolicy::default() }
    }

    #[test]
    fn delivered_and_rejected_are_final() {
        let mut d = Delivery::new(RetryPolicy::default());
        let mut p = Progress::default();
        assert_eq!(d.after_attempt(&mut p, &SendOutcome::Delivered, MS, MS, None, 0.5), Step::Delivered);
        let reject = SendOutcome::Reject { status: 401, message: "bad key".into() };
        assert_eq!(d.after_attempt(&mut p, &reject, MS, MS, None, 0.5), Step::Rejected);
        assert_eq!(p.attempts, 2);
    }

    #[test]
    fn backs_off_with_full_jitter_until_the_budget_is_spent() {
        let mut d = Delivery::new(policy(1_000));
        let mut p = Progress::default();
        let mut now = Duration::ZERO;
        // Ceilings 200, 400, 800 ms; half of each with random 0.5; each attempt takes 10 ms.
        let mut waits = Vec::new();
        loop {
            now += 10 * MS;
            match d.after_attempt(&mut p, &retry(None), 10 * MS, now, None, 0.5) {
                Step::RetryIn(w) => {
                    waits.push(w.as_millis());
                    now += w;
                }
                Step::Exhausted => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(waits, [100, 200, 400]);
        assert_eq!(p.attempts, 4);
        assert!(p.spent <= 1_000 * MS, "{:?}", p.spent);
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_counts_against_the_budget() {
        let mut d = Delivery::new(policy(5_000));
        let mut p = Progress::default();
        let step = d.after_attempt(&mut p, &retry(Some(2_000 * MS)), MS, MS, None, 0.0);
        assert_eq!(step, Step::RetryIn(2_000 * MS));
        let step = d.after_attempt(&mut p, &retry(Some(4_000 * MS)), MS, 2_002 * MS, None, 0.0);
        assert_eq!(step, Step::Exhausted);
    }

    #[test]
    fn after_one_exhausted_batch_the_next_gets_one_attempt_until_a_delivery() {
        let mut d = Delivery::new(policy(100));
        let mut first = Progress::default();
        assert_eq!(d.after_attempt(&mut first, &retry(Some(200 * MS)), MS, MS, None, 0.0), Step::Exhausted);
        assert!(d.is_degraded(2 * MS));
        let mut second = Progress::default();
        assert_eq!(d.after_attempt(&mut second, &retry(Some(MS)), MS, 3 * MS, None, 0.0), Step::Exhausted);
        let mut third = Progress::default();
        assert_eq!(d.after_attempt(&mut third, &SendOutcome::Delivered, MS, 4 * MS, None, 0.0), Step::Delivered);
        assert!(!d.is_degraded(5 * MS));
        let mut fourth = Progress::default();
        assert_eq!(d.after_attempt(&mut fourth, &retry(Some(MS)), MS, 6 * MS, None, 0.0), Step::RetryIn(MS));
    }

    #[test]
    fn degradation_ends_after_max_elapsed() {
        let mut d = Delivery::new(policy(100));
        let mut p = Progress::default();
        assert_eq!(d.after_attempt(&mut p, &retry(Some(200 * MS)), MS, 10 * MS, None, 0.0), Step::Exhausted);
        assert!(d.is_degraded(109 * MS));
        assert!(!d.is_degraded(110 * MS));
    }

    #[test]
    fn a_wait_past_the_deadline_defers_without_charging_the_wait() {
        let mut d = Delivery::new(RetryPolicy::default());
        let mut p = Progress::default();
        let step = d.after_attempt(&mut p, &retry(Some(2_000 * MS)), 5 * MS, 100 * MS, Some(1_000 * MS), 0.0);
        assert_eq!(step, Step::Deferred);
        assert_eq!(p, Progress { attempts: 1, spent: 5 * MS });
        // The next flush, much later on the clock, picks it up with its budget intact.
        let step = d.after_attempt(&mut p, &retry(None), 5 * MS, 60_000 * MS, Some(70_000 * MS), 0.5);
        assert_eq!(step, Step::RetryIn(200 * MS));
    }

    #[test]
    fn a_retry_after_past_both_deadline_and_budget_is_deferred_not_given_up() {
        let mut d = Delivery::new(policy(30_000));
        let mut p = Progress::default();
        let step = d.after_attempt(&mut p, &retry(Some(60_000 * MS)), MS, MS, Some(5_000 * MS), 0.0);
        assert_eq!(step, Step::Deferred);
        assert!(!d.is_degraded(2 * MS));
        // Without a deadline (the native sender, which has a spool) the same answer exhausts it.
        assert_eq!(d.after_attempt(&mut p, &retry(Some(60_000 * MS)), MS, MS, None, 0.0), Step::Exhausted);
    }

    #[test]
    fn spool_replay_backs_off_to_the_ceiling() {
        let d = Delivery::new(RetryPolicy::default());
        assert_eq!(d.spool_retry_in(1, None), 200 * MS);
        assert_eq!(d.spool_retry_in(3, None), 800 * MS);
        assert_eq!(d.spool_retry_in(30, None), Duration::from_secs(10));
        assert_eq!(d.spool_retry_in(3, Some(5 * MS)), 5 * MS);
    }
}
