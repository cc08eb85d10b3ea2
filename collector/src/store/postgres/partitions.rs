//! Time partitions of `spans` and `trace_attrs` ([`crate::store::Store::maintain_partitions`]).
//!
//! # Keyed by sequence number, whose high bits are the day
//!
//! Both tables are partitioned by range of `trace_seq`, and a new trace's sequence number is
//! `day << DAY_SHIFT | counter`: the UTC day of its earliest span in the commit that created it,
//! then the low [`DAY_SHIFT`] bits of the `trace_seq` sequence (a day would need 2^40 new traces to
//! repeat one). So one day of traces is one range of sequence numbers, known in advance, and:
//!
//! * the primary keys stay what they were — `(trace_seq, span_id)` and `(project_id, attr_hash,
//!   trace_seq)` contain the partition key, so PostgreSQL enforces them across partitions and a
//!   retried span is still stored once (`ON CONFLICT`);
//! * every query that names a trace by its sequence number (trace detail, listing probes, the
//!   audit's row lookups) touches one partition;
//! * a trace and all its spans live in one partition, whatever their own times, so dropping a
//!   partition removes whole traces, as row-by-row retention does.
//!
//! `traces` itself is not partitioned: it carries the unique `(project_id, trace_id)` index that
//! finds a trace's sequence number (a partitioned unique index must contain the partition key),
//! and it is small — a row per trace. Dropping a day deletes its rows by primary-key range.
//!
//! # Which partitions exist
//!
//! The collector's retention task ([`crate::services::retention`]) creates one partition per table
//! per day from the longest retention back to [`crate::services::retention::PARTITION_DAYS_AHEAD`]
//! days ahead, at start and every minute. Traces of other days go to `*_default` (clocks far off,
//! history older than retention), and sequence numbers handed out before partitioning (and traces
//! of 1970-01-01) to `*_legacy`; retention deletes from those two row by row. A partition created
//! for a day the default partition already holds traces of takes those rows over in the same
//! transaction. Once every project's retention cutoff is past a day's end, the day's partitions
//! are dropped with its `traces` rows, in one transaction.
//!
//! # Locks
//!
//! Creating a partition attaches it (`SHARE UPDATE EXCLUSIVE` on the parent: commits and reads go
//! on) after locking the default partition; dropping one locks the parent exclusively for the
//! moment of the drop. Both wait at most [`LOCK_TIMEOUT_MS`] for their locks — so a long query
//! delays them, never ingest for longer — and are tried again at the next pass when they time
//! out. Collectors sharing the database take turns under an advisory lock.

use std::collections::BTreeSet;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::client::{Db, block_on, describe, get};
use crate::civil::{date_of_day, day_of_date};
use crate::store::{PartitionPlan, PartitionReport, StoreError, StoreResult};

/// Bits of a sequence number below the day.
pub const DAY_SHIFT: u32 = 40;
/// The counter's bits of a sequence number.
pub const COUNTER_MASK: i64 = (1 << DAY_SHIFT) - 1;
/// The tables partitioned by day.
pub const TABLES: [&str; 2] = ["spans", "trace_attrs"];
/// How long partition maintenance waits for a table lock before it gives up until the next pass.
pub const LOCK_TIMEOUT_MS: u32 = 500;

/// Key of the advisory lock partition maintenance holds (collectors sharing a database take turns).
const PARTITION_LOCK: i64 = 0x7472_6163_6578_0002;
const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// The last day a partition is created for (start times beyond go to the default partition).
const MAX_DAY: i64 = 213_503; // u64::MAX / DAY_NS

/// The day whose partition holds a trace that starts at `start_ns` (unix ns): at most 213,503,
/// so `day << DAY_SHIFT` fits a `BIGINT` with room to spare.
pub fn day_of(start_ns: u64) -> i64 {
    i64::try_from(start_ns / DAY_NS).unwrap_or(MAX_DAY)
}

/// The sequence numbers of `day`'s traces: `[from, to)`.
fn seq_range(day: i64) -> (i64, i64) {
    (day << DAY_SHIFT, (day + 1) << DAY_SHIFT)
}

/// `spans_p20261204` for the 4th of December 2026.
fn partition_name(table: &str, day: i64) -> String {
    let (y, m, d) = date_of_day(day);
    format!("{table}_p{y:04}{m:02}{d:02}")
}

/// The day of a partition named by [`partition_name`], `None` for other names.
fn day_of_name(table: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<u32>().ok());
    day_of_date(i64::from(n(0..4)?), n(4..6)?, n(6..8)?)
}

/// The days that have a partition of `table`.
fn day_partitions(client: &Client, table: &str) -> StoreResult<BTreeSet<i64>> {
    let rows = block_on(client.query_typed(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = $1::text::regclass",
        &[(&table, Type::TEXT)],
    ))
    .db()?;
    let mut days = BTreeSet::new();
    for row in &rows {
        let name: String = get(row, 0)?;
        days.extend(day_of_name(table, &name));
    }
    Ok(days)
}

/// Whether `e` is a lock wait that timed out (try again at the next pass).
fn is_lock_timeout(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// What one day's step did.
enum Step {
    Done(PartitionReport),
    /// A lock was not granted in time.
    Busy,
}

/// Creates the missing partitions of `plan` and drops the expired ones (see the module docs).
pub(super) fn maintain(client: &mut Client, plan: &PartitionPlan) -> StoreResult<PartitionReport> {
    let mut report = PartitionReport::default();
    let mut existing: Vec<BTreeSet<i64>> = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        existing.push(day_partitions(client, table)?);
    }
    let all: BTreeSet<i64> = existing.iter().flatten().copied().collect();
    if let Some(before) = plan.drop_before_day {
        for day in all.range(..before) {
            match drop_day(client, *day)? {
                Step::Done(r) => {
                    report.dropped += r.dropped;
                    report.traces += r.traces;
                    report.spans += r.spans;
                }
                Step::Busy => {
                    tracing::info!(day = %partition_name("spans", *day), "partition drop waited too long for its lock; next pass");
                    return Ok(report);
                }
            }
        }
    }
    let first = plan.drop_before_day.map_or(plan.first_day, |d| plan.first_day.max(d)).max(1);
    let last = plan.last_day.min(MAX_DAY);
    // Today and the days ahead first, then back in time: until a day's partition exists its new
    // traces go to the default partition, and the current ones are the ones arriving.
    let today = plan.today.max(first).min(last);
    for day in (today..=last).chain((first..today).rev()) {
        let missing: Vec<&str> =
            TABLES.iter().zip(&existing).filter(|(_, days)| !days.contains(&day)).map(|(t, _)| *t).collect();
        if missing.is_empty() {
            continue;
        }
        match create_day(client, day, &missing)? {
            Step::Done(r) => report.created += r.created,
            Step::Busy => {
                tracing::info!(day = %partition_name("spans", day), "partition creation waited too long for its lock; next pass");
                return Ok(report);
            }
        }
    }
    Ok(report)
}

/// Runs `f` in a transaction with the maintenance lock and [`LOCK_TIMEOUT_MS`]; a lock timeout
/// rolls everything back and is [`Step::Busy`].
fn in_transaction(
    client: &mut Client,
    f: impl FnOnce(&tokio_postgres::Transaction<'_>) -> Result<PartitionReport, tokio_postgres::Error>,
) -> StoreResult<Step> {
    let tx = block_on(client.transaction()).db()?;
    let run = || -> Result<PartitionReport, tokio_postgres::Error> {
        block_on(tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")))?;
        block_on(tx.execute_typed("SELECT pg_advisory_xact_lock($1)", &[(&PARTITION_LOCK, Type::INT8)]))?;
        f(&tx)
    };
    match run() {
        Ok(report) => match block_on(tx.commit()) {
            Ok(()) => Ok(Step::Done(report)),
            Err(e) if is_lock_timeout(&e) => Ok(Step::Busy),
            Err(e) => Err(StoreError::Database(describe(&e))),
        },
        // Dropping the transaction rolls it back.
        Err(e) if is_lock_timeout(&e) => Ok(Step::Busy),
        Err(e) => Err(StoreError::Database(describe(&e))),
    }
}

/// Creates `day`'s partition of each of `tables`, moving in what the default partition holds of it.
fn create_day(client: &mut Client, day: i64, tables: &[&str]) -> StoreResult<Step> {
    let (from, to) = seq_range(day);
    in_transaction(client, |tx| {
        for table in tables {
            let name = partition_name(table, day);
            // Another collector may have created it since the caller looked.
            let exists = block_on(tx.query_typed_one("SELECT to_regclass($1) IS NOT NULL", &[(&name, Type::TEXT)]))?;
            if exists.try_get::<_, bool>(0)? {
                continue;
            }
            // The default partition first: attaching scans it for rows of the new range under
            // this lock anyway, and rows a commit routes there meanwhile would fail the attach.
            block_on(tx.batch_execute(&format!(
                "LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE;
                 CREATE TABLE {name} (LIKE {table});
                 INSERT INTO {name} SELECT * FROM {table}_default WHERE trace_seq >= {from} AND trace_seq < {to};
                 DELETE FROM {table}_default WHERE trace_seq >= {from} AND trace_seq < {to};
                 ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (trace_seq >= {from} AND trace_seq < {to});
                 ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to});
                 ALTER TABLE {name} DROP CONSTRAINT {name}_range;"
            )))?;
        }
        Ok(PartitionReport { created: 1, ..PartitionReport::default() })
    })
}

/// Drops `day`'s partitions with the `traces` rows of their sequence numbers, and takes their
/// spans off the projects' counters.
fn drop_day(client: &mut Client, day: i64) -> StoreResult<Step> {
    let (from, to) = seq_range(day);
    in_transaction(client, |tx| {
        let rows = block_on(tx.query_typed(
            "WITH gone AS (DELETE FROM traces WHERE id >= $1 AND id < $2 RETURNING project_id, span_count) \
             SELECT project_id, count(*)::bigint, coalesce(sum(span_count), 0)::bigint FROM gone GROUP BY project_id",
            &[(&from, Type::INT8), (&to, Type::INT8)],
        ))?;
        let mut report = PartitionReport { dropped: 1, ..PartitionReport::default() };
        let (mut projects, mut spans) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for row in &rows {
            projects.push(row.try_get::<_, i64>(0)?);
            report.traces += u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0);
            let n: i64 = row.try_get(2)?;
            report.spans += u64::try_from(n).unwrap_or(0);
            spans.push(n);
        }
        block_on(tx.execute_typed(
            "UPDATE projects p SET span_count = GREATEST(p.span_count - u.n, 0) \
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(id, n) WHERE p.id = u.id",
            &[(&projects, Type::INT8_ARRAY), (&spans, Type::INT8_ARRAY)],
        ))?;
        for table in TABLES {
            block_on(tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", partition_name(table, day))))?;
        }
        Ok(report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranges() {
        let day = 20_791; // 2026-12-04
        assert_eq!(partition_name("spans", day), "spans_p20261204");
        assert_eq!(day_of_name("spans", "spans_p20261204"), Some(day));
        assert_eq!(day_of_name("spans", "trace_attrs_p20261204"), None);
        assert_eq!(day_of_name("trace_attrs", "trace_attrs_p20261204"), Some(day));
        for other in ["spans_default", "spans_legacy", "spans_p2026120", "spans_p20261304", "spans_px0261204"] {
            assert_eq!(day_of_name("spans", other), None, "{other}");
        }
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(u64::MAX), MAX_DAY);
        assert_eq!(u64::MAX / DAY_NS, MAX_DAY as u64);
        assert!(seq_range(MAX_DAY).1 < i64::MAX >> 1);
        assert_eq!(day_of(20_791 * DAY_NS + 5), day);
        let (from, to) = seq_range(day);
        assert_eq!((from >> DAY_SHIFT, to >> DAY_SHIFT, from & COUNTER_MASK), (day, day + 1, 0));
        // The migration's legacy partition ends where day 1 begins.
        let legacy_end = (1i64 << DAY_SHIFT).to_string();
        assert!(super::super::schema::MIGRATIONS[6].contains(&format!("TO ({legacy_end})")));
    }
}

/// These need a PostgreSQL server (see `super::tests`).
#[cfg(test)]
mod postgres_tests {
    use std::collections::HashMap;

    use tokio_postgres::NoTls;

    use super::super::schema::migrate_to;
    use super::super::tests::TestDb;
    use super::*;
    use crate::services::retention::{PARTITION_DAYS_AHEAD, RetentionPolicy, maintain_partitions, run_pass};
    use crate::store::Store;
    use crate::store::conformance::{batch, request, span, tid};

    /// A client of the database at `url`, its connection driven by the returned runtime.
    fn connect(url: &str) -> (tokio::runtime::Runtime, Client) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let client = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        });
        (rt, client)
    }

    /// Rows of `table` per partition.
    fn rows_by_partition(url: &str, table: &str) -> HashMap<String, i64> {
        let (_rt, client) = connect(url);
        let sql = format!("SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1");
        let rows = block_on(client.query(&sql, &[])).unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// A two-span trace starting at `start` (unix ns).
    fn trace_at(n: u32, start: u64) -> Vec<tracex_core::SpanData> {
        vec![
            span(tid(40, n), 1, None, "root", start, start + 50),
            span(tid(40, n), 2, Some(1), "child", start + 1, start + 9),
        ]
    }

    /// Days get partitions of their own, ahead of time; traces land in their start's day (or the
    /// default partition when it has none), whole; expired days are dropped whole, with their
    /// traces and counters, and what no dropped day held goes row by row.
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_traces_live_in_day_partitions_and_expire_by_the_day() {
        let db = TestDb::new();
        let store = db.store();
        store.migrate().unwrap();
        // Noon today: the cutoffs below fall mid-day whatever the time.
        let today = day_of(crate::now_unix_nano());
        let now = u64::try_from(today).unwrap() * DAY_NS + DAY_NS / 2;
        let policy = RetentionPolicy { default_days: 2, by_project: HashMap::new() };
        // Before any project exists nothing is dropped, and the days back to the longest retention
        // and a few ahead are created.
        let r = maintain_partitions(&store, &policy, now).unwrap();
        assert_eq!(r.created, 2 + 1 + PARTITION_DAYS_AHEAD as u64, "{r:?}");
        let r = store.maintain_partitions(&policy.partition_plan(&[], now)).unwrap();
        assert_eq!(r, PartitionReport::default(), "a second call finds nothing to do");

        let day = |d: i64| u64::try_from(d).unwrap() * DAY_NS + 3_600_000_000_000;
        let spans: Vec<_> = [
            (1, day(today - 2)),  // a partition that expires
            (2, day(today)),      // kept
            (3, day(today + 2)),  // created ahead
            (4, day(today - 40)), // before the partitions: default
            (5, day(today + 30)), // far ahead: default
            (6, 1_000),           // 1970-01-01: the legacy partition
        ]
        .into_iter()
        .flat_map(|(n, start)| trace_at(n, start))
        .collect();
        store.commit(&[batch("parts", 1, request("svc", spans))]).unwrap();
        // A later span of trace 1 goes to its trace's partition, though it starts today.
        store
            .commit(&[batch(
                "parts",
                2,
                request("svc", vec![span(tid(40, 1), 3, Some(1), "late", day(today), day(today) + 5)]),
            )])
            .unwrap();
        // A retry stores nothing twice.
        store
            .commit(&[batch(
                "parts",
                2,
                request("svc", vec![span(tid(40, 1), 3, Some(1), "late", day(today), day(today) + 5)]),
            )])
            .unwrap();
        let by_part = rows_by_partition(&db.url, "spans");
        let name = |d: i64| partition_name("spans", d);
        assert_eq!(by_part.get(&name(today - 2)), Some(&3), "{by_part:?}");
        assert_eq!(by_part.get(&name(today)), Some(&2), "{by_part:?}");
        assert_eq!(by_part.get(&name(today + 2)), Some(&2), "{by_part:?}");
        assert_eq!(by_part.get("spans_default"), Some(&4), "{by_part:?}");
        assert_eq!(by_part.get("spans_legacy"), Some(&2), "{by_part:?}");
        assert_eq!(by_part.values().sum::<i64>(), 13);
        assert_eq!(store.span_count("parts").unwrap(), 13);
        let attrs = rows_by_partition(&db.url, "trace_attrs");
        assert!(attrs.contains_key(&partition_name("trace_attrs", today - 2)), "{attrs:?}");

        // A day created after traces of it arrived takes them over from the default partition.
        let back = RetentionPolicy { default_days: 45, by_project: HashMap::new() };
        let r = store.maintain_partitions(&back.partition_plan(&["parts".to_owned()], now)).unwrap();
        assert_eq!(r.created, 43, "{r:?}");
        let by_part = rows_by_partition(&db.url, "spans");
        assert_eq!(by_part.get(&name(today - 40)), Some(&2), "{by_part:?}");
        assert_eq!(by_part.get("spans_default"), Some(&2), "{by_part:?}");
        assert_eq!(store.get_trace("parts", tid(40, 4)).unwrap().len(), 2);

        // Retention of 2 days, the cutoff mid-day 2 days ago: the day partitions before that day go
        // whole (trace 4's), the rest row by row (trace 1 with its late span, from the day of the
        // cutoff, and trace 6 from the legacy partition).
        let e = run_pass(&store, &policy, now, std::time::Duration::ZERO).unwrap();
        assert_eq!((e.traces, e.spans), (3, 7), "{e:?}");
        let by_part = rows_by_partition(&db.url, "spans");
        assert!(!by_part.contains_key(&name(today - 2)) && !by_part.contains_key(&name(today - 40)), "{by_part:?}");
        assert_eq!(by_part.values().sum::<i64>(), 6, "{by_part:?}");
        assert_eq!(store.span_count("parts").unwrap(), 6);
        for (n, left) in [(1, 0), (2, 2), (3, 2), (4, 0), (5, 2), (6, 0)] {
            assert_eq!(store.get_trace("parts", tid(40, n)).unwrap().len(), left, "trace {n}");
        }
        let (_rt, client) = connect(&db.url);
        let days = day_partitions(&client, "spans").unwrap();
        assert_eq!(days.first(), Some(&(today - 2)), "{days:?}");
        assert!(days.contains(&(today + PARTITION_DAYS_AHEAD)), "{days:?}");
        let e = run_pass(&store, &policy, now, std::time::Duration::ZERO).unwrap();
        assert_eq!((e.traces, e.spans), (0, 0), "a second pass finds nothing");

        // A project that keeps everything holds every partition.
        store.commit(&[batch("forever", 1, request("svc", trace_at(7, day(today - 1))))]).unwrap();
        let keep = RetentionPolicy { default_days: 2, by_project: HashMap::from([("forever".to_owned(), 0)]) };
        let plan = keep.partition_plan(&store.project_names().unwrap(), now + 5 * DAY_NS);
        assert_eq!(plan.drop_before_day, None);
        assert_eq!(store.maintain_partitions(&plan).unwrap().dropped, 0);
    }

    /// A database migrated before partitioning keeps its rows (now the legacy partition) and goes
    /// on: old traces take new spans there, new traces get day partitions.
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_migration_keeps_rows_stored_before_partitioning() {
        let db = TestDb::new();
        let (_rt, mut client) = connect(&db.url);
        // Step 7 partitions; this build's commits also write each trace's longest span (step 8),
        // so the column is there for them and dropped again before the migration adds it back.
        migrate_to(&mut client, 6).unwrap();
        block_on(client.batch_execute("ALTER TABLE traces ADD COLUMN max_duration_ns BIGINT NOT NULL DEFAULT 0"))
            .unwrap();
        let store = db.store();
        // Spans of 1970-01-01 get sequence numbers from the plain counter, as every trace did
        // before partitioning.
        let old = (1..=3).flat_map(|n| trace_at(n + 10, 1_000 + u64::from(n))).collect();
        store.commit(&[batch("mig", 1, request("svc", old))]).unwrap();
        let seqs: Vec<i64> =
            block_on(client.query("SELECT id FROM traces", &[])).unwrap().iter().map(|r| r.get(0)).collect();
        assert!(seqs.len() == 3 && seqs.iter().all(|s| *s < 1 << DAY_SHIFT), "{seqs:?}");
        block_on(client.batch_execute("ALTER TABLE traces DROP COLUMN max_duration_ns")).unwrap();

        store.migrate().unwrap();
        assert_eq!(rows_by_partition(&db.url, "spans"), HashMap::from([("spans_legacy".to_owned(), 6)]));
        assert_eq!(rows_by_partition(&db.url, "trace_attrs").keys().collect::<Vec<_>>(), ["trace_attrs_legacy"]);
        let now = crate::now_unix_nano();
        let policy = RetentionPolicy { default_days: 30, by_project: HashMap::new() };
        store.maintain_partitions(&policy.partition_plan(&store.project_names().unwrap(), now)).unwrap();
        store
            .commit(&[batch(
                "mig",
                2,
                request("svc", [vec![span(tid(40, 11), 3, Some(1), "late", now, now + 1)], trace_at(20, now)].concat()),
            )])
            .unwrap();
        let by_part = rows_by_partition(&db.url, "spans");
        assert_eq!(by_part.get("spans_legacy"), Some(&7), "{by_part:?}");
        assert_eq!(by_part.get(&partition_name("spans", day_of(now))), Some(&2), "{by_part:?}");
        assert_eq!(store.get_trace("mig", tid(40, 11)).unwrap().len(), 3);
        assert_eq!(store.span_count("mig").unwrap(), 9);
        let q = crate::store::TraceQuery { project: "mig".into(), limit: 10, ..Default::default() };
        assert_eq!(store.list_traces(&q).unwrap().traces.len(), 4);
        // The old traces' longest spans (50 ns roots) were filled in by the migration.
        let longer = |min| crate::store::TraceQuery { min_duration_ns: Some(min), ..q.clone() };
        assert_eq!(store.list_traces(&longer(50)).unwrap().traces.len(), 4);
        assert_eq!(store.list_traces(&longer(51)).unwrap().traces.len(), 0);
    }
}
