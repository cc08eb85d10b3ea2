//! Retention: one bounded chunk of deletions per transaction ([`crate::store::Store::expire`]),
//! then an incremental vacuum step so the file gives the pages back.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{ATTR_EPOCH_SHIFT, Db, SqliteStore, blob};
use crate::stats::{DIMENSION_KEYS, minute_of};
use crate::store::common::{decode_span_body, ns, span_attr_hashes};
use crate::store::plan::stats::{HOUR, MINUTE};
use crate::store::{Expired, StoreResult};

/// Free pages one chunk gives back to the file system (`PRAGMA incremental_vacuum`): 16 MiB of
/// 8 KiB pages, so one call never holds the writer long.
const VACUUM_PAGES_PER_CHUNK: i64 = 2_048;

impl SqliteStore {
    pub(super) fn expire_in(
        conn: &mut Connection,
        project: &str,
        before_ns: u64,
        max_traces: usize,
        max_minutes: i64,
    ) -> StoreResult<Expired> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        let Some(project_id) = Self::project_id(&tx, project)? else {
            return Ok(Expired { done: true, ..Expired::default() });
        };
        let mut out = Expired::default();
        let seqs: Vec<i64> = {
            let mut select = tx
                .prepare(
                    "SELECT id FROM traces INDEXED BY traces_by_start_duration WHERE project_id = ?1 AND start_ns < ?2 \
                     ORDER BY start_ns LIMIT ?3",
                )
                .db()?;
            let rows = select
                .query_map(params![project_id, ns(before_ns), i64::try_from(max_traces).unwrap_or(i64::MAX)], |r| {
                    r.get(0)
                })
                .db()?;
            rows.collect::<Result<_, _>>().db()?
        };
        {
            let mut spans = tx.prepare("SELECT service, body FROM spans WHERE trace_seq = ?1").db()?;
            // The trace leaves each of its sets; a set left empty goes (sequence numbers can be
            // handed out again once the newest trace has gone, so no set may keep a stale one).
            let mut attr = tx
                .prepare(&format!(
                    "UPDATE trace_attr_sets SET members = tracex_remove(members, ?3) WHERE project_id = ?1 \
                     AND epoch = ?3 >> {ATTR_EPOCH_SHIFT} AND attr_hash = ?2 RETURNING length(members)"
                ))
                .db()?;
            let mut attr_empty = tx
                .prepare(&format!(
                    "DELETE FROM trace_attr_sets WHERE project_id = ?1 AND epoch = ?3 >> {ATTR_EPOCH_SHIFT} \
                     AND attr_hash = ?2 AND length(members) = 0"
                ))
                .db()?;
            let mut del_spans = tx.prepare("DELETE FROM spans WHERE trace_seq = ?1").db()?;
            let mut del_trace = tx.prepare("DELETE FROM traces WHERE id = ?1").db()?;
            let mut text = String::new();
            for seq in &seqs {
                // The sets are found again from the spans (`trace_attr_sets` is keyed by hash).
                let mut hashes = HashSet::new();
                let mut rows = spans.query([seq]).db()?;
                while let Some(r) = rows.next().db()? {
                    let service: Option<String> = r.get(0).db()?;
                    let span = decode_span_body(blob(r, 1)?)?;
                    span_attr_hashes(service.as_deref(), &span, &mut text, |h| {
                        hashes.insert(h);
                    });
                }
                for h in hashes {
                    let left: Option<i64> =
                        attr.query_row(params![project_id, h, seq], |r| r.get(0)).optional().db()?;
                    if left == Some(0) {
                        attr_empty.execute(params![project_id, h, seq]).db()?;
                    }
                }
                out.spans += del_spans.execute([seq]).db()? as u64;
                del_trace.execute([seq]).db()?;
                out.traces += 1;
            }
        }
        tx.execute(
            "UPDATE projects SET span_count = max(span_count - ?2, 0) WHERE id = ?1",
            params![project_id, i64::try_from(out.spans).unwrap_or(i64::MAX)],
        )
        .db()?;
        // Statistics rows whose whole period is before the cutoff: at most `max_minutes` of the
        // oldest minutes per dimension and resolution (an hourly row goes once its hour has).
        let before_minute = minute_of(before_ns);
        let mut stats = tx
            .prepare(
                "DELETE FROM span_stats WHERE project_id = ?1 AND dim_key = ?2 AND resolution = ?5 \
                 AND minute < min(?3 - ?5 + 1, (SELECT min(minute) FROM span_stats WHERE project_id = ?1 \
                 AND dim_key = ?2 AND resolution = ?5) + ?4)",
            )
            .db()?;
        for dim in std::iter::once("").chain(DIMENSION_KEYS.iter().copied()) {
            for resolution in [MINUTE, HOUR] {
                out.stat_rows +=
                    stats.execute(params![project_id, dim, before_minute, max_minutes, resolution]).db()? as u64;
            }
        }
        drop(stats);
        tx.commit().db()?;
        // Gives free pages back when the file was created with auto_vacuum = INCREMENTAL (see
        // `open`); a no-op otherwise.
        // Stepped to the end: it frees a page per step (`execute_batch` would step once).
        let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES_PER_CHUNK})")).db()?;
        let mut steps = vacuum.query([]).db()?;
        while steps.next().db()?.is_some() {}
        out.done = out.traces < max_traces as u64 && out.stat_rows == 0;
        Ok(out)
    }

    pub(super) fn project_names_in(conn: &Connection) -> StoreResult<Vec<String>> {
        let mut stmt = conn.prepare("SELECT name FROM projects ORDER BY name").db()?;
        let rows = stmt.query_map([], |r| r.get(0)).db()?;
        rows.collect::<Result<_, _>>().db()
    }
}
