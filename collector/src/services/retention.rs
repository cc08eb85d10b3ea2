//! Retention: every `retention_interval_seconds` ([`RETENTION_INTERVAL`] by default), each
//! project's traces older than its time-to-live are deleted with their spans, index rows and
//! statistics, in bounded chunks
//! ([`crate::store::Store::expire`]: at most [`TRACES_PER_CHUNK`] traces and
//! [`MINUTES_PER_CHUNK`] minutes of statistics per transaction), pausing [`CHUNK_PAUSE`] between
//! chunks so ingest's commits get the writer in between: retention never holds it for long.
//!
//! Age is the trace's start (a trace goes whole, spans and all), and for statistics the minute of
//! the span start: both age out at the same cutoff.
//!
//! A store partitioned by time (PostgreSQL) is also kept partitioned here, at start and before
//! each pass ([`Store::maintain_partitions`]): a partition per day from the longest retention back
//! to [`PARTITION_DAYS_AHEAD`] days ahead, and whole days dropped once every project's cutoff is
//! past them, so the chunked deletions are left with what no whole day holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Expired, PartitionPlan, PartitionReport, Store, StoreResult};

/// How often a retention pass runs by default (`retention_interval_seconds`).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// Most traces deleted per transaction.
pub const TRACES_PER_CHUNK: usize = 1_000;
/// Most minutes of statistics rows deleted per transaction.
pub const MINUTES_PER_CHUNK: i64 = 60;
/// Pause between two chunks.
pub const CHUNK_PAUSE: Duration = Duration::from_millis(20);
/// Default time-to-live of a project's spans, in days (`retention_days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Most days back in time that get partitions of their own: a retention of years (any `u32` is
/// accepted) would otherwise create two tables a day back to 1970. Older traces, rare, go to the
/// default partition, which retention empties in chunks like any other.
pub const MAX_PARTITION_DAYS_BACK: i64 = 366;

/// Day partitions created ahead of today (clocks run ahead, and a day must exist before its first
/// trace arrives or that trace goes to the default partition).
pub const PARTITION_DAYS_AHEAD: i64 = 3;

const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// How long each project's spans are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days for projects without their own setting; 0 keeps everything.
    pub default_days: u32,
    /// Per-project days (0 keeps everything).
    pub by_project: HashMap<String, u32>,
}

impl RetentionPolicy {
    /// This policy (the config's) with the per-project days set by `tracex-collector retention
    /// set` over it: read at every pass, so a setting takes effect on every collector of a fleet
    /// without a restart.
    pub fn with_store(&self, store: &dyn Store) -> StoreResult<Self> {
        let mut policy = self.clone();
        policy.by_project.extend(store.retention_overrides()?);
        Ok(policy)
    }

    /// Days `project`'s spans are kept (0: forever).
    pub fn days(&self, project: &str) -> u32 {
        self.by_project.get(project).copied().unwrap_or(self.default_days)
    }

    /// The start before which `project`'s traces go at `now` (unix ns), `None` to keep all.
    pub fn cutoff(&self, project: &str, now_ns: u64) -> Option<u64> {
        let days = self.days(project);
        // Saturating: a setting of billions of days (the CLI and the config take any u32) keeps
        // everything rather than overflowing.
        (days > 0).then(|| now_ns.saturating_sub(u64::from(days).saturating_mul(DAY_NS)))
    }

    /// The partitions a time-partitioned store keeps at `now` (unix ns) holding `projects`: days
    /// back to the longest retention (the default's when every project keeps everything), days
    /// before every project's cutoff dropped.
    pub fn partition_plan(&self, projects: &[String], now_ns: u64) -> PartitionPlan {
        let today = i64::try_from(now_ns / DAY_NS).unwrap_or(i64::MAX / 2);
        let longest = std::iter::once(self.default_days)
            .chain(self.by_project.values().copied())
            .filter(|d| *d > 0)
            .max()
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let cutoffs: Option<Vec<u64>> = projects.iter().map(|p| self.cutoff(p, now_ns)).collect();
        // A day goes once its end is at or before every cutoff: the days before the earliest
        // cutoff's day.
        let drop_before_day = cutoffs
            .filter(|c| !c.is_empty())
            .and_then(|c| c.into_iter().min())
            .map(|c| i64::try_from(c / DAY_NS).unwrap_or(i64::MAX / 2));
        PartitionPlan {
            first_day: today - i64::from(longest).min(MAX_PARTITION_DAYS_BACK),
            today,
            last_day: today + PARTITION_DAYS_AHEAD,
            drop_before_day,
        }
    }
}

/// Keeps a time-partitioned store's partitions ([`RetentionPolicy::partition_plan`]).
pub fn maintain_partitions(store: &dyn Store, policy: &RetentionPolicy, now_ns: u64) -> StoreResult<PartitionReport> {
    let plan = policy.partition_plan(&store.project_names()?, now_ns);
    store.maintain_partitions(&plan)
}

/// One pass over every project at `now` (unix ns); returns the totals deleted.
pub fn run_pass(store: &dyn Store, policy: &RetentionPolicy, now_ns: u64, pause: Duration) -> StoreResult<Expired> {
    let parts = maintain_partitions(store, policy, now_ns)?;
    let mut total = Expired { traces: parts.traces, spans: parts.spans, done: true, ..Expired::default() };
    for project in store.project_names()? {
        let Some(before) = policy.cutoff(&project, now_ns) else { continue };
        loop {
            let e = store.expire(&project, before, TRACES_PER_CHUNK, MINUTES_PER_CHUNK)?;
            total.traces += e.traces;
            total.spans += e.spans;
            total.stat_rows += e.stat_rows;
            if e.done {
                break;
            }
            std::thread::sleep(pause);
        }
    }
    Ok(total)
}

/// The time partitions, created before the collector serves (the server awaits this first): until
/// today's exist, new traces go to the default partition, and the pass that then creates them
/// moves those rows while the first queries run. A failure is logged and retried by [`run`].
pub async fn prepare_partitions(store: Arc<dyn Store>, policy: RetentionPolicy) {
    let first = move || maintain_partitions(&*store, &policy.with_store(&*store)?, crate::now_unix_nano());
    match tokio::task::spawn_blocking(first).await {
        Ok(Ok(r)) if r.created > 0 || r.dropped > 0 => {
            tracing::info!(created = r.created, dropped = r.dropped, "time partitions maintained");
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "partition maintenance failed; retrying at the next interval"),
        Err(e) => tracing::warn!(error = %e, "partition maintenance panicked"),
    }
}

/// Runs passes forever on the runtime after [`prepare_partitions`] (stop it by aborting the task);
/// a failed pass is logged and retried at the next interval.
pub async fn run(store: Arc<dyn Store>, policy: RetentionPolicy, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let (store, policy) = (store.clone(), policy.clone());
        let pass = tokio::task::spawn_blocking(move || {
            run_pass(&*store, &policy.with_store(&*store)?, crate::now_unix_nano(), CHUNK_PAUSE)
        })
        .await;
        match pass {
            Ok(Ok(e)) if e.traces > 0 || e.stat_rows > 0 => {
                tracing::info!(traces = e.traces, spans = e.spans, stat_rows = e.stat_rows, "retention deleted");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed; retrying at the next interval"),
            Err(e) => tracing::warn!(error = %e, "retention pass panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{batch, request, span, tid};
    use crate::store::sqlite::SqliteStore;

    /// A migrated SQLite store in a fresh directory of its own (removed by the caller).
    fn store_in(tag: &str) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tracex-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir.join("t.db")).unwrap();
        store.migrate().unwrap();
        (store, dir)
    }

    #[test]
    fn each_project_keeps_its_own_days() {
        let (store, dir) = store_in("retention");
        let now = 100 * DAY_NS;
        for (n, project) in ["short", "default", "forever"].iter().enumerate() {
            let spans = vec![
                span(tid(70, 1), 1, None, "old", now - 3 * DAY_NS, now - 3 * DAY_NS + 5),
                span(tid(70, 2), 1, None, "new", now - DAY_NS / 2, now - DAY_NS / 2 + 5),
            ];
            store.commit(&[batch(project, n as u32, request("svc", spans))]).unwrap();
        }
        let policy = RetentionPolicy {
            default_days: 2,
            by_project: HashMap::from([("short".to_owned(), 1), ("forever".to_owned(), 0)]),
        };
        let e = run_pass(&store, &policy, now, Duration::ZERO).unwrap();
        assert_eq!((e.traces, e.spans), (2, 2), "{e:?}");
        for (project, left) in [("short", 1), ("default", 1), ("forever", 2)] {
            assert_eq!(store.span_count(project).unwrap(), left, "{project}");
        }
        assert!(store.get_trace("short", tid(70, 2)).unwrap().len() == 1);
        let e = run_pass(&store, &policy, now, Duration::ZERO).unwrap();
        assert_eq!((e.traces, e.stat_rows), (0, 0), "a second pass finds nothing");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn days_set_in_the_store_override_the_config() {
        let (store, dir) = store_in("retention-set");
        let now = 100 * DAY_NS;
        for (n, project) in ["shortened", "lengthened", "untouched"].iter().enumerate() {
            let spans = vec![span(tid(71, 1), 1, None, "old", now - 3 * DAY_NS, now - 3 * DAY_NS + 5)];
            store.commit(&[batch(project, n as u32, request("svc", spans))]).unwrap();
        }
        let config = RetentionPolicy { default_days: 5, by_project: HashMap::from([("lengthened".to_owned(), 2)]) };
        store.set_retention_override("shortened", Some(1)).unwrap();
        store.set_retention_override("lengthened", Some(0)).unwrap();
        let policy = config.with_store(&store).unwrap();
        assert_eq!((policy.days("shortened"), policy.days("lengthened"), policy.days("untouched")), (1, 0, 5));
        let e = run_pass(&store, &policy, now, Duration::ZERO).unwrap();
        assert_eq!(e.traces, 1, "{e:?}");
        for (project, left) in [("shortened", 0), ("lengthened", 1), ("untouched", 1)] {
            assert_eq!(store.span_count(project).unwrap(), left, "{project}");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_number_of_days_is_a_cutoff_not_an_overflow() {
        let policy = RetentionPolicy { default_days: u32::MAX, by_project: HashMap::new() };
        assert_eq!(policy.cutoff("p", 100 * DAY_NS), Some(0), "everything is kept");
        let plan = policy.partition_plan(&["p".to_owned()], 1_000 * DAY_NS);
        assert_eq!(plan.drop_before_day, Some(0));
        assert_eq!(plan.first_day, 1_000 - MAX_PARTITION_DAYS_BACK, "a year of day partitions, not 1970 onwards");
    }

    #[test]
    fn partitions_reach_back_to_the_longest_retention_and_drop_past_every_cutoff() {
        let now = 100 * DAY_NS + DAY_NS / 2;
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let policy = RetentionPolicy { default_days: 30, by_project: HashMap::from([("long".to_owned(), 90)]) };
        let plan = policy.partition_plan(&names(&["a", "long"]), now);
        assert_eq!((plan.first_day, plan.last_day), (10, 100 + PARTITION_DAYS_AHEAD));
        // The cutoff of the longest-kept project is mid-day 10: days before it go.
        assert_eq!(plan.drop_before_day, Some(10));
        assert_eq!(policy.partition_plan(&names(&["a"]), now).drop_before_day, Some(70));
        assert_eq!(policy.partition_plan(&[], now).drop_before_day, None, "no project, nothing to drop");
        let forever = RetentionPolicy { default_days: 0, by_project: HashMap::from([("short".to_owned(), 7)]) };
        let plan = forever.partition_plan(&names(&["short", "other"]), now);
        assert_eq!((plan.first_day, plan.drop_before_day), (93, None), "a project keeps everything");
        let all_forever = RetentionPolicy::default();
        assert_eq!(all_forever.partition_plan(&names(&["x"]), now).first_day, 100 - i64::from(DEFAULT_RETENTION_DAYS));
    }
}
