//! Commits: one `BEGIN IMMEDIATE` transaction per call (see the module docs of [`super`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use tracex_core::encode::encode_spans;
use tracex_core::{InstrumentationScope, Resource, StatusCode};

use super::{Db, SqliteStore, Writer};
use crate::store::common::{
    SERVICE_KEY, TraceCap, Tuning, attr_hash, is_indexed_key, ns, render_value, same_envelope, unns,
};
use crate::store::{CommitOutcome, NewBatch, StoreResult};

/// Resource hashes remembered by the writer; the map is simply cleared when it grows past this.
const RESOURCE_CACHE_MAX: usize = 4096;

/// A trace touched by one commit: its sequence number and the aggregate of its spans inserted.
struct TraceAgg {
    seq: i64,
    /// No `traces` row yet: inserted at the end of the commit.
    is_new: bool,
    /// Spans the trace held before this commit.
    stored_before: u64,
    start: i64,
    end: i64,
    root: Option<(String, Option<String>)>,
    spans: i64,
    errors: i64,
    /// Distinct `trace_attrs` hashes of the trace's new spans.
    hashes: Vec<i64>,
}

impl SqliteStore {
    pub(super) fn commit_in(
        writer: &mut Writer,
        batches: &[NewBatch],
        tuning: Tuning,
    ) -> StoreResult<Vec<CommitOutcome>> {
        let Writer { conn, projects, resources } = writer;
        let mut cap = TraceCap::new(tuning.max_spans_per_trace);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        // Ids handed out in this transaction; remembered only once it commits.
        let mut new_projects: HashMap<String, i64> = HashMap::new();
        let mut new_resources: HashMap<[u8; 32], i64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut traces: HashMap<(i64, [u8; 16]), TraceAgg> = HashMap::new();
        let mut counters: HashMap<i64, (i64, i64)> = HashMap::new();
        {
            let mut insert_project =
                tx.prepare("INSERT INTO projects (name) VALUES (?1) ON CONFLICT (name) DO NOTHING").db()?;
            let mut select_project = tx.prepare("SELECT id FROM projects WHERE name = ?1").db()?;
            let mut insert_batch = tx
                .prepare(
                    "INSERT OR IGNORE INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, \
                     sdk_version, created_at_ns, received_at_ns, span_count, envelope_sha256) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .db()?;
            let mut select_envelope =
                tx.prepare("SELECT envelope_sha256 FROM batches WHERE project_id = ?1 AND batch_id = ?2").db()?;
            let mut insert_resource =
                tx.prepare("INSERT OR IGNORE INTO resources (hash, body) VALUES (?1, ?2)").db()?;
            let mut select_resource = tx.prepare("SELECT id FROM resources WHERE hash = ?1").db()?;
            let mut select_trace =
                tx.prepare("SELECT id, span_count FROM traces WHERE project_id = ?1 AND trace_id = ?2").db()?;
            let mut insert_span = tx
                .prepare(
                    "INSERT OR IGNORE INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, \
                     end_ns, duration_ns, status, resource_id, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .db()?;
            // Trace sequence numbers are handed out here (the writer is the only one), so spans can
            // be keyed by them before the trace's row is written.
            let mut next_seq: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM traces", [], |r| r.get(0)).db()?;

            let empty_resource = Resource::default();
            let empty_scope = InstrumentationScope::default();
            let mut body = Vec::with_capacity(1024);
            let mut text = String::with_capacity(128);

            for batch in batches {
                let project_id = match projects.get(&batch.project).or_else(|| new_projects.get(&batch.project)) {
                    Some(id) => *id,
                    None => {
                        insert_project.execute([&batch.project]).db()?;
                        let id: i64 = select_project.query_row([&batch.project], |r| r.get(0)).db()?;
                        new_projects.insert(batch.project.clone(), id);
                        id
                    }
                };
                let span_total = batch.request.span_count();
                let inserted = insert_batch
                    .execute(params![
                        project_id,
                        &batch.batch_id[..],
                        &batch.key_id[..],
                        &batch.instance_id[..],
                        batch.sequence as i64,
                        &batch.sdk_name,
                        &batch.sdk_version,
                        batch.created_at_unix_nano as i64,
                        batch.received_at_unix_nano as i64,
                        span_total as i64,
                        &batch.envelope_sha256[..],
                    ])
                    .db()?;
                if inserted == 0 {
                    let stored: Option<Vec<u8>> =
                        select_envelope.query_row(params![project_id, &batch.batch_id[..]], |r| r.get(0)).db()?;
                    outcomes.push(same_envelope(stored.as_deref(), &batch.envelope_sha256));
                    continue;
                }

                let (mut stored, mut over_cap) = (0usize, 0usize);
                for rs in &batch.request.resource_spans {
                    let service = rs.resource.service_name();
                    let service_hash = service.map(|s| attr_hash(SERVICE_KEY, s));
                    for ss in &rs.scope_spans {
                        if ss.spans.is_empty() {
                            continue;
                        }
                        body.clear();
                        encode_spans(&rs.resource, &ss.scope, &[], &mut body);
                        let hash: [u8; 32] = Sha256::digest(&body).into();
                        let resource_id = match resources.get(&hash).or_else(|| new_resources.get(&hash)) {
                            Some(id) => *id,
                            None => {
                                insert_resource.execute(params![&hash[..], &body]).db()?;
                                let id: i64 = select_resource.query_row([&hash[..]], |r| r.get(0)).db()?;
                                new_resources.insert(hash, id);
                                id
                            }
                        };

                        for span in &ss.spans {
                            let agg = match traces.entry((project_id, span.trace_id.0)) {
                                Entry::Occupied(e) => e.into_mut(),
                                Entry::Vacant(e) => {
                                    let existing: Option<(i64, i64)> = select_trace
                                        .query_row(params![project_id, &span.trace_id.0[..]], |r| {
                                            Ok((r.get(0)?, r.get(1)?))
                                        })
                                        .optional()
                                        .db()?;
                                    let (seq, is_new, stored_before) = match existing {
                                        Some((seq, count)) => (seq, false, unns(count)),
                                        None => {
                                            next_seq += 1;
                                            (next_seq - 1, true, 0)
                                        }
                                    };
                                    e.insert(TraceAgg {
                                        seq,
                                        is_new,
                                        stored_before,
                                        start: i64::MAX,
                                        end: i64::MIN,
                                        root: None,
                                        spans: 0,
                                        errors: 0,
                                        hashes: Vec::new(),
                                    })
                                }
                            };
                            if !cap.admit(project_id, span.trace_id.0, span.span_id.0, agg.stored_before) {
                                over_cap += 1;
                                continue;
                            }
                            let start = ns(span.start_time_unix_nano);
                            let end = ns(span.end_time_unix_nano);
                            body.clear();
                            encode_spans(&empty_resource, &empty_scope, std::slice::from_ref(span), &mut body);
                            let n = insert_span
                                .execute(params![
                                    agg.seq,
                                    &span.span_id.0[..],
                                    span.parent_span_id.as_ref().map(|p| &p.0[..]),
                                    &*span.name,
                                    service,
                                    span.kind.as_i32(),
                                    start,
                                    end,
                                    ns(span.duration_nanos()),
                                    span.status.code as i64,
                                    resource_id,
                                    &body,
                                ])
                                .db()?;
                            if n == 0 {
                                continue; // already stored (by an earlier batch)
                            }
                            stored += 1;

                            agg.start = agg.start.min(start);
                            agg.end = agg.end.max(end);
                            agg.spans += 1;
                            if span.status.code == StatusCode::Error {
                                agg.errors += 1;
                            }
                            if span.parent_span_id.is_none() && agg.root.is_none() {
                                agg.root = Some((span.name.to_string(), service.map(str::to_owned)));
                            }
                            let hashes = &mut agg.hashes;
                            let mut add = |h: i64| {
                                if !hashes.contains(&h) {
                                    hashes.push(h);
                                }
                            };
                            if let Some(h) = service_hash {
                                add(h);
                            }
                            // (span names are not indexed: see the module docs)
                            for kv in &span.attributes {
                                if is_indexed_key(&kv.key) && render_value(&kv.value, &mut text) {
                                    add(attr_hash(kv.key.as_bytes(), &text));
                                }
                            }
                        }
                    }
                }
                let c = counters.entry(project_id).or_default();
                c.0 += stored as i64;
                c.1 += 1;
                outcomes.push(CommitOutcome::Stored { spans: stored, over_cap });
            }

            let mut insert_trace = tx
                .prepare(
                    "INSERT INTO traces (id, project_id, trace_id, start_ns, end_ns, has_root, root_name, \
                     root_service, span_count, error_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .db()?;
            let mut update_trace = tx
                .prepare(
                    "UPDATE traces SET start_ns = min(start_ns, ?2), end_ns = max(end_ns, ?3), \
                     root_name = CASE WHEN has_root THEN root_name ELSE ?5 END, \
                     root_service = CASE WHEN has_root THEN root_service ELSE ?6 END, \
                     has_root = max(has_root, ?4), span_count = span_count + ?7, error_count = error_count + ?8 \
                     WHERE id = ?1",
                )
                .db()?;
            let mut insert_attr = tx
                .prepare("INSERT OR IGNORE INTO trace_attrs (project_id, attr_hash, trace_seq) VALUES (?1, ?2, ?3)")
                .db()?;
            let mut touched: Vec<((i64, [u8; 16]), TraceAgg)> = traces.drain().filter(|(_, a)| a.spans > 0).collect();
            // In sequence order: new traces append to the table.
            touched.sort_unstable_by_key(|(_, a)| a.seq);
            let mut attr_rows: Vec<(i64, i64, i64)> = Vec::new();
            for ((project_id, trace_id), agg) in touched {
                let has_root = i64::from(agg.root.is_some());
                let (root_name, root_service) = match agg.root {
                    Some((name, service)) => (Some(name), service),
                    None => (None, None),
                };
                if agg.is_new {
                    insert_trace
                        .execute(params![
                            agg.seq,
                            project_id,
                            &trace_id[..],
                            agg.start,
                            agg.end,
                            has_root,
                            root_name,
                            root_service,
                            agg.spans,
                            agg.errors,
                        ])
                        .db()?;
                } else {
                    update_trace
                        .execute(params![
                            agg.seq,
                            agg.start,
                            agg.end,
                            has_root,
                            root_name,
                            root_service,
                            agg.spans,
                            agg.errors
                        ])
                        .db()?;
                }
                attr_rows.extend(agg.hashes.iter().map(|h| (project_id, *h, agg.seq)));
            }
            // Sorted: consecutive inserts land on neighbouring B-tree pages.
            attr_rows.sort_unstable();
            for (project_id, hash, seq) in &attr_rows {
                insert_attr.execute(params![project_id, hash, seq]).db()?;
            }

            let mut bump = tx
                .prepare(
                    "UPDATE projects SET span_count = span_count + ?2, batch_count = batch_count + ?3 WHERE id = ?1",
                )
                .db()?;
            for (project_id, (spans, batches)) in &counters {
                bump.execute(params![project_id, spans, batches]).db()?;
            }
        }
        tx.commit().db()?;

        projects.extend(new_projects);
        if resources.len() + new_resources.len() > RESOURCE_CACHE_MAX {
            resources.clear();
        }
        resources.extend(new_resources);
        Ok(outcomes)
    }
}
