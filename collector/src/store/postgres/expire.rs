//! Retention: one bounded chunk of deletions per transaction ([`crate::store::Store::expire`]),
//! for what no whole partition drop removes (see [`super::partitions`]): traces in the default and
//! legacy partitions, and those of projects whose retention is shorter than another's.

use std::collections::HashSet;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::PostgresStore;
use super::client::{Db, block_on, get};
use crate::stats::{DIMENSION_KEYS, minute_of};
use crate::store::common::{decode_span_body, ns, span_attr_hashes};
use crate::store::plan::stats::{HOUR, MINUTE};
use crate::store::{Expired, StoreResult};

impl PostgresStore {
    pub(super) fn expire_in(
        client: &mut Client,
        project: &str,
        before_ns: u64,
        max_traces: usize,
        max_minutes: i64,
    ) -> StoreResult<Expired> {
        let tx = block_on(client.transaction()).db()?;
        let row =
            block_on(tx.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&project, Type::TEXT)])).db()?;
        let Some(project_id) = row.map(|r| get::<i64>(&r, 0)).transpose()? else {
            return Ok(Expired { done: true, ..Expired::default() });
        };
        let limit = i64::try_from(max_traces).unwrap_or(i64::MAX);
        let rows = block_on(tx.query_typed(
            "SELECT id FROM traces WHERE project_id = $1 AND start_ns < $2 ORDER BY start_ns LIMIT $3 FOR UPDATE",
            &[(&project_id, Type::INT8), (&ns(before_ns), Type::INT8), (&limit, Type::INT8)],
        ))
        .db()?;
        let seqs: Vec<i64> = rows.iter().map(|r| get(r, 0)).collect::<StoreResult<_>>()?;
        let mut out = Expired { traces: seqs.len() as u64, ..Expired::default() };
        if !seqs.is_empty() {
            // The index rows are found again from the spans (`trace_attrs` is keyed by hash).
            let spans = block_on(tx.query_typed(
                "SELECT trace_seq, service, body FROM spans WHERE trace_seq = ANY($1)",
                &[(&seqs, Type::INT8_ARRAY)],
            ))
            .db()?;
            let mut keys: HashSet<(i64, i64)> = HashSet::new();
            let mut text = String::new();
            for r in &spans {
                let seq: i64 = get(r, 0)?;
                let service: Option<String> = get(r, 1)?;
                let span = decode_span_body(get(r, 2)?)?;
                span_attr_hashes(service.as_deref(), &span, &mut text, |h| {
                    keys.insert((h, seq));
                });
            }
            let (hashes, key_seqs): (Vec<i64>, Vec<i64>) = keys.into_iter().unzip();
            block_on(tx.execute_typed(
                "DELETE FROM trace_attrs a USING UNNEST($2::bigint[], $3::bigint[]) AS u(h, s) \
                 WHERE a.project_id = $1 AND a.attr_hash = u.h AND a.trace_seq = u.s",
                &[(&project_id, Type::INT8), (&hashes, Type::INT8_ARRAY), (&key_seqs, Type::INT8_ARRAY)],
            ))
            .db()?;
            out.spans =
                block_on(tx.execute_typed("DELETE FROM spans WHERE trace_seq = ANY($1)", &[(&seqs, Type::INT8_ARRAY)]))
                    .db()?;
            block_on(tx.execute_typed("DELETE FROM traces WHERE id = ANY($1)", &[(&seqs, Type::INT8_ARRAY)])).db()?;
            let spans = i64::try_from(out.spans).unwrap_or(i64::MAX);
            block_on(tx.execute_typed(
                "UPDATE projects SET span_count = GREATEST(span_count - $2, 0) WHERE id = $1",
                &[(&project_id, Type::INT8), (&spans, Type::INT8)],
            ))
            .db()?;
        }
        let before_minute = minute_of(before_ns);
        for dim in std::iter::once("").chain(DIMENSION_KEYS.iter().copied()) {
            for resolution in [MINUTE, HOUR] {
                // As SQLite's: rows whose whole period is before the cutoff, a bounded range.
                out.stat_rows += block_on(tx.execute_typed(
                    "DELETE FROM span_stats WHERE project_id = $1 AND dim_key = $2 AND resolution = $5 \
                     AND minute < LEAST($3 - $5 + 1, (SELECT min(minute) FROM span_stats WHERE project_id = $1 \
                     AND dim_key = $2 AND resolution = $5) + $4)",
                    &[
                        (&project_id, Type::INT8),
                        (&dim, Type::TEXT),
                        (&before_minute, Type::INT8),
                        (&max_minutes, Type::INT8),
                        (&resolution, Type::INT8),
                    ],
                ))
                .db()?;
            }
        }
        block_on(tx.commit()).db()?;
        out.done = out.traces < max_traces as u64 && out.stat_rows == 0;
        Ok(out)
    }

    pub(super) fn project_names_in(client: &mut Client) -> StoreResult<Vec<String>> {
        let rows = block_on(client.query_typed("SELECT name FROM projects ORDER BY name", &[])).db()?;
        rows.iter().map(|r| get(r, 0)).collect()
    }
}
