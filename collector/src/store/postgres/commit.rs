//! Commits: one transaction of a handful of multi-row statements, retried on conflicts with a
//! concurrent writer (see the module docs of [`super`]).

use std::collections::{HashMap, HashSet};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};
use tracex_core::{SpanData, StatusCode};

use super::client::{Db, block_on, describe, get};
use super::{COMMIT_ATTEMPTS, PostgresStore, ROWS_PER_STATEMENT, Writer};
use crate::store::common::{
    SERVICE_KEY, TraceCap, Tuning, attr_hash, encode_resource_body, encode_span_body, is_indexed_key, ns, render_value,
    same_envelope, unns,
};
use crate::store::{CommitOutcome, NewBatch, StoreError, StoreResult};

/// Resource hashes remembered by the writer; the map is simply cleared when it grows past this.
const RESOURCE_CACHE_MAX: usize = 4096;

/// Why a commit attempt failed.
enum CommitError {
    /// A conflict with a concurrent writer: try again.
    Retry(String),
    /// Anything else.
    Fatal(StoreError),
}

impl From<tokio_postgres::Error> for CommitError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE => {
                Self::Retry(describe(&e))
            }
            _ => Self::Fatal(StoreError::Database(describe(&e))),
        }
    }
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e)
    }
}

/// What a commit attempt did: the outcomes, and the project and resource ids it created (to
/// remember once the transaction committed).
type Committed = (Vec<CommitOutcome>, HashMap<String, i64>, HashMap<[u8; 32], i64>);

/// A span of an accepted batch, on its way into `spans`.
struct SpanIn<'a> {
    batch: usize,
    project_id: i64,
    resource: usize,
    service: Option<&'a str>,
    span: &'a SpanData,
}

/// A trace touched by one commit: the aggregate of its spans inserted.
struct TraceAgg {
    seq: i64,
    project_id: i64,
    trace_id: [u8; 16],
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

impl PostgresStore {
    /// Commits `batches`, retrying from the start on a conflict with a concurrent writer.
    pub(super) fn commit_with_retries(
        client: &mut Client,
        writer: &mut Writer,
        batches: &[NewBatch],
        tuning: Tuning,
    ) -> StoreResult<Vec<CommitOutcome>> {
        let mut attempt = 1;
        loop {
            let tx = block_on(client.transaction()).db()?;
            let result = Self::commit_in(&tx, writer, batches, tuning)
                .and_then(|out| block_on(tx.commit()).map(|()| out).map_err(CommitError::from));
            match result {
                Ok((outcomes, projects, resources)) => {
                    writer.projects.extend(projects);
                    if writer.resources.len() + resources.len() > RESOURCE_CACHE_MAX {
                        writer.resources.clear();
                    }
                    writer.resources.extend(resources);
                    return Ok(outcomes);
                }
                Err(CommitError::Retry(why)) if attempt < COMMIT_ATTEMPTS => {
                    tracing::info!(attempt, reason = %why, "commit conflicted with a concurrent writer; retrying");
                    attempt += 1;
                }
                Err(CommitError::Retry(why)) => {
                    return Err(StoreError::Database(format!("commit kept conflicting: {why}")));
                }
                Err(CommitError::Fatal(e)) => return Err(e),
            }
        }
    }

    fn commit_in(
        tx: &Transaction<'_>,
        writer: &Writer,
        batches: &[NewBatch],
        tuning: Tuning,
    ) -> Result<Committed, CommitError> {
        // --- projects
        let mut new_projects: HashMap<String, i64> = HashMap::new();
        let mut missing: Vec<&str> =
            batches.iter().map(|b| b.project.as_str()).filter(|p| !writer.projects.contains_key(*p)).collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            block_on(tx.execute_typed(
                "INSERT INTO projects (name) SELECT * FROM UNNEST($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING",
                &[(&missing, Type::TEXT_ARRAY)],
            ))?;
            for row in block_on(tx.query_typed(
                "SELECT name, id FROM projects WHERE name = ANY($1::text[])",
                &[(&missing, Type::TEXT_ARRAY)],
            ))? {
                new_projects.insert(get(&row, 0)?, get(&row, 1)?);
            }
        }
        let project_id = |name: &str| -> StoreResult<i64> {
            writer
                .projects
                .get(name)
                .or_else(|| new_projects.get(name))
                .copied()
                .ok_or_else(|| StoreError::Database(format!("project {name:?} has no id")))
        };

        // --- batches: the first copy of each (project, batch id) in this call is inserted if new
        let mut keys: Vec<(i64, [u8; 16])> = Vec::with_capacity(batches.len());
        for b in batches {
            keys.push((project_id(&b.project)?, b.batch_id));
        }
        let mut first = vec![false; batches.len()];
        {
            let mut seen = HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                first[i] = seen.insert(*k);
            }
        }
        let mut order: Vec<usize> = (0..batches.len()).filter(|i| first[*i]).collect();
        order.sort_unstable_by_key(|i| keys[*i]);
        let mut accepted = vec![false; batches.len()];
        {
            let pid: Vec<i64> = order.iter().map(|i| keys[*i].0).collect();
            let bid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].batch_id[..]).collect();
            let kid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].key_id[..]).collect();
            let iid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].instance_id[..]).collect();
            let seq: Vec<i64> = order.iter().map(|i| batches[*i].sequence as i64).collect();
            let sdk: Vec<&str> = order.iter().map(|i| batches[*i].sdk_name.as_str()).collect();
            let ver: Vec<&str> = order.iter().map(|i| batches[*i].sdk_version.as_str()).collect();
            let created: Vec<i64> = order.iter().map(|i| batches[*i].created_at_unix_nano as i64).collect();
            let received: Vec<i64> = order.iter().map(|i| batches[*i].received_at_unix_nano as i64).collect();
            let total: Vec<i64> = order.iter().map(|i| batches[*i].request.span_count() as i64).collect();
            let envelope: Vec<&[u8]> = order.iter().map(|i| &batches[*i].envelope_sha256[..]).collect();
            let rows = block_on(tx.query_typed(
                "INSERT INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, sdk_version, \
                 created_at_ns, received_at_ns, span_count, envelope_sha256) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[], \
                 $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[]) \
                 ON CONFLICT (project_id, batch_id) DO NOTHING RETURNING project_id, batch_id",
                &[
                    (&pid, Type::INT8_ARRAY),
                    (&bid, Type::BYTEA_ARRAY),
                    (&kid, Type::BYTEA_ARRAY),
                    (&iid, Type::BYTEA_ARRAY),
                    (&seq, Type::INT8_ARRAY),
                    (&sdk, Type::TEXT_ARRAY),
                    (&ver, Type::TEXT_ARRAY),
                    (&created, Type::INT8_ARRAY),
                    (&received, Type::INT8_ARRAY),
                    (&total, Type::INT8_ARRAY),
                    (&envelope, Type::BYTEA_ARRAY),
                ],
            ))?;
            let mut inserted: HashSet<(i64, [u8; 16])> = HashSet::with_capacity(rows.len());
            for row in rows {
                let id: &[u8] = get(&row, 1)?;
                let id = <[u8; 16]>::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("batch id of {} bytes", id.len())))?;
                inserted.insert((get(&row, 0)?, id));
            }
            for i in order {
                accepted[i] = inserted.contains(&keys[i]);
            }
        }
        // The envelope hashes now stored under the ids of batches not accepted (stored earlier, or
        // earlier in this call): same hash, a retry; another, a conflict.
        let mut stored_envelopes: HashMap<(i64, [u8; 16]), Option<Vec<u8>>> = HashMap::new();
        let rejected: Vec<usize> = (0..batches.len()).filter(|i| !accepted[*i]).collect();
        if !rejected.is_empty() {
            let pid: Vec<i64> = rejected.iter().map(|i| keys[*i].0).collect();
            let bid: Vec<&[u8]> = rejected.iter().map(|i| &batches[*i].batch_id[..]).collect();
            for row in block_on(tx.query_typed(
                "SELECT project_id, batch_id, envelope_sha256 FROM batches \
                 WHERE (project_id, batch_id) IN (SELECT * FROM UNNEST($1::bigint[], $2::bytea[]))",
                &[(&pid, Type::INT8_ARRAY), (&bid, Type::BYTEA_ARRAY)],
            ))? {
                let id: &[u8] = get(&row, 1)?;
                let id = <[u8; 16]>::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("batch id of {} bytes", id.len())))?;
                stored_envelopes.insert((get(&row, 0)?, id), get(&row, 2)?);
            }
        }

        // --- resources and the spans of accepted batches
        let mut body = Vec::with_capacity(1024);
        let mut resource_hashes: Vec<[u8; 32]> = Vec::new();
        let mut resource_index: HashMap<[u8; 32], usize> = HashMap::new();
        let mut new_resource_bodies: Vec<Vec<u8>> = Vec::new();
        let mut new_resource_hashes: Vec<[u8; 32]> = Vec::new();
        let mut spans: Vec<SpanIn<'_>> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            if !accepted[i] {
                continue;
            }
            let project_id = keys[i].0;
            for rs in &b.request.resource_spans {
                let service = rs.resource.service_name();
                for ss in &rs.scope_spans {
                    if ss.spans.is_empty() {
                        continue;
                    }
                    let hash = encode_resource_body(&rs.resource, &ss.scope, &mut body);
                    let resource = *resource_index.entry(hash).or_insert_with(|| {
                        resource_hashes.push(hash);
                        if !writer.resources.contains_key(&hash) {
                            new_resource_hashes.push(hash);
                            new_resource_bodies.push(body.clone());
                        }
                        resource_hashes.len() - 1
                    });
                    for span in &ss.spans {
                        spans.push(SpanIn { batch: i, project_id, resource, service, span });
                    }
                }
            }
        }
        let mut new_resources: HashMap<[u8; 32], i64> = HashMap::new();
        if !new_resource_hashes.is_empty() {
            let hashes: Vec<&[u8]> = new_resource_hashes.iter().map(|h| &h[..]).collect();
            let bodies: Vec<&[u8]> = new_resource_bodies.iter().map(Vec::as_slice).collect();
            block_on(tx.execute_typed(
                "INSERT INTO resources (hash, body) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) ORDER BY 1 \
                 ON CONFLICT (hash) DO NOTHING",
                &[(&hashes, Type::BYTEA_ARRAY), (&bodies, Type::BYTEA_ARRAY)],
            ))?;
            for row in block_on(tx.query_typed(
                "SELECT hash, id FROM resources WHERE hash = ANY($1::bytea[])",
                &[(&hashes, Type::BYTEA_ARRAY)],
            ))? {
                let hash: &[u8] = get(&row, 0)?;
                let hash = <[u8; 32]>::try_from(hash)
                    .map_err(|_| StoreError::Corrupt(format!("resource hash of {} bytes", hash.len())))?;
                new_resources.insert(hash, get(&row, 1)?);
            }
        }
        let mut resource_ids = Vec::with_capacity(resource_hashes.len());
        for h in &resource_hashes {
            let id = writer.resources.get(h).or_else(|| new_resources.get(h)).copied();
            resource_ids.push(id.ok_or_else(|| StoreError::Database("a resource has no id".into()))?);
        }

        // --- traces: existing ones by lookup, new ones get sequence numbers
        let mut traces: Vec<TraceAgg> = Vec::new();
        let mut trace_index: HashMap<(i64, [u8; 16]), usize> = HashMap::new();
        let mut span_trace: Vec<usize> = Vec::with_capacity(spans.len());
        for s in &spans {
            let key = (s.project_id, s.span.trace_id.0);
            let idx = *trace_index.entry(key).or_insert_with(|| {
                traces.push(TraceAgg {
                    seq: 0,
                    project_id: key.0,
                    trace_id: key.1,
                    is_new: true,
                    stored_before: 0,
                    start: i64::MAX,
                    end: i64::MIN,
                    root: None,
                    spans: 0,
                    errors: 0,
                    hashes: Vec::new(),
                });
                traces.len() - 1
            });
            span_trace.push(idx);
        }
        for chunk in traces.chunks_mut(ROWS_PER_STATEMENT) {
            let pid: Vec<i64> = chunk.iter().map(|t| t.project_id).collect();
            let tid: Vec<&[u8]> = chunk.iter().map(|t| &t.trace_id[..]).collect();
            let rows = block_on(tx.query_typed(
                "SELECT u.n, t.id, t.span_count FROM UNNEST($1::bigint[], $2::bytea[]) \
                 WITH ORDINALITY AS u(project_id, trace_id, n) \
                 JOIN traces t ON t.project_id = u.project_id AND t.trace_id = u.trace_id",
                &[(&pid, Type::INT8_ARRAY), (&tid, Type::BYTEA_ARRAY)],
            ))?;
            for row in rows {
                let n: i64 = get(&row, 0)?;
                let t = usize::try_from(n - 1)
                    .ok()
                    .and_then(|n| chunk.get_mut(n))
                    .ok_or_else(|| StoreError::Database("trace lookup out of range".into()))?;
                t.seq = get(&row, 1)?;
                t.stored_before = unns(get(&row, 2)?);
                t.is_new = false;
            }
        }
        let fresh = traces.iter().filter(|t| t.is_new).count();
        if fresh > 0 {
            let rows = block_on(tx.query_typed(
                "SELECT nextval('trace_seq') FROM generate_series(1, $1::bigint)",
                &[(&(fresh as i64), Type::INT8)],
            ))?;
            let mut seqs = Vec::with_capacity(rows.len());
            for row in rows {
                seqs.push(get::<i64>(&row, 0)?);
            }
            seqs.sort_unstable();
            if seqs.len() != fresh {
                return Err(StoreError::Database("the trace sequence handed out too few numbers".into()).into());
            }
            for (t, seq) in traces.iter_mut().filter(|t| t.is_new).zip(seqs) {
                t.seq = seq;
            }
        }

        // --- spans: the first copy of each (trace, span id) in this call, in trace order
        // (the per-trace cap applies here, in arrival order, as in the SQLite store)
        let mut order: Vec<usize> = Vec::with_capacity(spans.len());
        let mut over_cap = vec![0usize; batches.len()];
        {
            let mut cap = TraceCap::new(tuning.max_spans_per_trace);
            let mut seen: HashSet<(i64, [u8; 8])> = HashSet::with_capacity(spans.len());
            for (i, s) in spans.iter().enumerate() {
                let t = &traces[span_trace[i]];
                if !cap.admit(t.project_id, t.trace_id, s.span.span_id.0, t.stored_before) {
                    over_cap[s.batch] += 1;
                } else if seen.insert((t.seq, s.span.span_id.0)) {
                    order.push(i);
                }
            }
        }
        order.sort_by_key(|i| (traces[span_trace[*i]].seq, spans[*i].span.span_id.0));
        let mut inserted = vec![false; spans.len()];
        let mut bodies: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        for chunk in order.chunks(ROWS_PER_STATEMENT) {
            bodies.clear();
            ends.clear();
            for i in chunk {
                encode_span_body(spans[*i].span, &mut body);
                bodies.extend_from_slice(&body);
                ends.push(bodies.len());
            }
            let seq: Vec<i64> = chunk.iter().map(|i| traces[span_trace[*i]].seq).collect();
            let sid: Vec<&[u8]> = chunk.iter().map(|i| &spans[*i].span.span_id.0[..]).collect();
            let parent: Vec<Option<&[u8]>> =
                chunk.iter().map(|i| spans[*i].span.parent_span_id.as_ref().map(|p| &p.0[..])).collect();
            let name: Vec<&str> = chunk.iter().map(|i| &*spans[*i].span.name).collect();
            let service: Vec<Option<&str>> = chunk.iter().map(|i| spans[*i].service).collect();
            let kind: Vec<i32> = chunk.iter().map(|i| spans[*i].span.kind.as_i32()).collect();
            let start: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.start_time_unix_nano)).collect();
            let end: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.end_time_unix_nano)).collect();
            let duration: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.duration_nanos())).collect();
            let status: Vec<i32> = chunk.iter().map(|i| spans[*i].span.status.code as i32).collect();
            let resource: Vec<i64> = chunk.iter().map(|i| resource_ids[spans[*i].resource]).collect();
            let body_refs: Vec<&[u8]> =
                ends.iter().scan(0, |from, to| Some(&bodies[std::mem::replace(from, *to)..*to])).collect();
            let rows = block_on(tx.query_typed(
                "INSERT INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, end_ns, \
                 duration_ns, status, resource_id, body) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], $6::int[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::int[], $11::bigint[], $12::bytea[]) \
                 ON CONFLICT (trace_seq, span_id) DO NOTHING RETURNING trace_seq, span_id",
                &[
                    (&seq, Type::INT8_ARRAY),
                    (&sid, Type::BYTEA_ARRAY),
                    (&parent, Type::BYTEA_ARRAY),
                    (&name, Type::TEXT_ARRAY),
                    (&service, Type::TEXT_ARRAY),
                    (&kind, Type::INT4_ARRAY),
                    (&start, Type::INT8_ARRAY),
                    (&end, Type::INT8_ARRAY),
                    (&duration, Type::INT8_ARRAY),
                    (&status, Type::INT4_ARRAY),
                    (&resource, Type::INT8_ARRAY),
                    (&body_refs, Type::BYTEA_ARRAY),
                ],
            ))?;
            if rows.len() == chunk.len() {
                for i in chunk {
                    inserted[*i] = true;
                }
            } else {
                let mut done: HashSet<(i64, [u8; 8])> = HashSet::with_capacity(rows.len());
                for row in rows {
                    let id: &[u8] = get(&row, 1)?;
                    let id = <[u8; 8]>::try_from(id)
                        .map_err(|_| StoreError::Corrupt(format!("span id of {} bytes", id.len())))?;
                    done.insert((get(&row, 0)?, id));
                }
                for i in chunk {
                    inserted[*i] = done.contains(&(traces[span_trace[*i]].seq, spans[*i].span.span_id.0));
                }
            }
        }

        // --- aggregates, in input order (the first parentless span is the root)
        let mut stored = vec![0usize; batches.len()];
        let mut text = String::with_capacity(128);
        for (i, s) in spans.iter().enumerate() {
            if !inserted[i] {
                continue;
            }
            stored[s.batch] += 1;
            let agg = &mut traces[span_trace[i]];
            let span = s.span;
            agg.start = agg.start.min(ns(span.start_time_unix_nano));
            agg.end = agg.end.max(ns(span.end_time_unix_nano));
            agg.spans += 1;
            if span.status.code == StatusCode::Error {
                agg.errors += 1;
            }
            if span.parent_span_id.is_none() && agg.root.is_none() {
                agg.root = Some((span.name.to_string(), s.service.map(str::to_owned)));
            }
            let hashes = &mut agg.hashes;
            let mut add = |h: i64| {
                if !hashes.contains(&h) {
                    hashes.push(h);
                }
            };
            if let Some(service) = s.service {
                add(attr_hash(SERVICE_KEY, service));
            }
            for kv in &span.attributes {
                if is_indexed_key(&kv.key) && render_value(&kv.value, &mut text) {
                    add(attr_hash(kv.key.as_bytes(), &text));
                }
            }
        }
        traces.retain(|t| t.spans > 0);
        traces.sort_unstable_by_key(|t| t.seq);

        // --- trace rows: insert the new, update the existing
        let (fresh, existing): (Vec<&TraceAgg>, Vec<&TraceAgg>) = traces.iter().partition(|t| t.is_new);
        let chunks = fresh.chunks(ROWS_PER_STATEMENT).map(|c| (true, c));
        for (is_new, chunk) in chunks.chain(existing.chunks(ROWS_PER_STATEMENT).map(|c| (false, c))) {
            let id: Vec<i64> = chunk.iter().map(|t| t.seq).collect();
            let start: Vec<i64> = chunk.iter().map(|t| t.start).collect();
            let end: Vec<i64> = chunk.iter().map(|t| t.end).collect();
            let has_root: Vec<bool> = chunk.iter().map(|t| t.root.is_some()).collect();
            let root_name: Vec<Option<&str>> = chunk.iter().map(|t| t.root.as_ref().map(|(n, _)| n.as_str())).collect();
            let root_service: Vec<Option<&str>> =
                chunk.iter().map(|t| t.root.as_ref().and_then(|(_, s)| s.as_deref())).collect();
            let span_count: Vec<i64> = chunk.iter().map(|t| t.spans).collect();
            let error_count: Vec<i64> = chunk.iter().map(|t| t.errors).collect();
            if is_new {
                let pid: Vec<i64> = chunk.iter().map(|t| t.project_id).collect();
                let tid: Vec<&[u8]> = chunk.iter().map(|t| &t.trace_id[..]).collect();
                let n = block_on(tx.execute_typed(
                    "INSERT INTO traces (id, project_id, trace_id, start_ns, end_ns, has_root, root_name, \
                     root_service, span_count, error_count) \
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], \
                     $6::bool[], $7::text[], $8::text[], $9::bigint[], $10::bigint[]) \
                     ON CONFLICT (project_id, trace_id) DO NOTHING",
                    &[
                        (&id, Type::INT8_ARRAY),
                        (&pid, Type::INT8_ARRAY),
                        (&tid, Type::BYTEA_ARRAY),
                        (&start, Type::INT8_ARRAY),
                        (&end, Type::INT8_ARRAY),
                        (&has_root, Type::BOOL_ARRAY),
                        (&root_name, Type::TEXT_ARRAY),
                        (&root_service, Type::TEXT_ARRAY),
                        (&span_count, Type::INT8_ARRAY),
                        (&error_count, Type::INT8_ARRAY),
                    ],
                ))?;
                if n != chunk.len() as u64 {
                    return Err(CommitError::Retry("a trace was created by a concurrent commit".into()));
                }
            } else {
                block_on(tx.execute_typed(
                    "UPDATE traces t SET start_ns = LEAST(t.start_ns, u.start_ns), \
                     end_ns = GREATEST(t.end_ns, u.end_ns), \
                     root_name = CASE WHEN t.has_root THEN t.root_name ELSE u.root_name END, \
                     root_service = CASE WHEN t.has_root THEN t.root_service ELSE u.root_service END, \
                     has_root = t.has_root OR u.has_root, \
                     span_count = t.span_count + u.span_count, error_count = t.error_count + u.error_count \
                     FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[], $5::text[], $6::text[], \
                     $7::bigint[], $8::bigint[]) \
                     AS u(id, start_ns, end_ns, has_root, root_name, root_service, span_count, error_count) \
                     WHERE t.id = u.id",
                    &[
                        (&id, Type::INT8_ARRAY),
                        (&start, Type::INT8_ARRAY),
                        (&end, Type::INT8_ARRAY),
                        (&has_root, Type::BOOL_ARRAY),
                        (&root_name, Type::TEXT_ARRAY),
                        (&root_service, Type::TEXT_ARRAY),
                        (&span_count, Type::INT8_ARRAY),
                        (&error_count, Type::INT8_ARRAY),
                    ],
                ))?;
            }
        }

        // --- the attribute index, sorted
        let mut attr_rows: Vec<(i64, i64, i64)> =
            traces.iter().flat_map(|t| t.hashes.iter().map(|h| (t.project_id, *h, t.seq))).collect();
        attr_rows.sort_unstable();
        for chunk in attr_rows.chunks(ROWS_PER_STATEMENT) {
            let pid: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let hash: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let seq: Vec<i64> = chunk.iter().map(|r| r.2).collect();
            block_on(tx.execute_typed(
                "INSERT INTO trace_attrs (project_id, attr_hash, trace_seq) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
                &[(&pid, Type::INT8_ARRAY), (&hash, Type::INT8_ARRAY), (&seq, Type::INT8_ARRAY)],
            ))?;
        }

        // --- counters
        let mut counters: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        for (i, key) in keys.iter().enumerate() {
            if accepted[i] {
                let c = counters.entry(key.0).or_default();
                c.0 += stored[i] as i64;
                c.1 += 1;
                outcomes.push(CommitOutcome::Stored { spans: stored[i], over_cap: over_cap[i] });
            } else {
                let stored = stored_envelopes.get(key).and_then(Option::as_deref);
                outcomes.push(same_envelope(stored, &batches[i].envelope_sha256));
            }
        }
        let mut counters: Vec<(i64, (i64, i64))> = counters.into_iter().collect();
        counters.sort_unstable();
        if !counters.is_empty() {
            let pid: Vec<i64> = counters.iter().map(|c| c.0).collect();
            let spans: Vec<i64> = counters.iter().map(|c| c.1.0).collect();
            let batches: Vec<i64> = counters.iter().map(|c| c.1.1).collect();
            block_on(tx.execute_typed(
                "UPDATE projects p SET span_count = p.span_count + u.spans, batch_count = p.batch_count + u.batches \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, spans, batches) WHERE p.id = u.id",
                &[(&pid, Type::INT8_ARRAY), (&spans, Type::INT8_ARRAY), (&batches, Type::INT8_ARRAY)],
            ))?;
        }
        Ok((outcomes, new_projects, new_resources))
    }
}
