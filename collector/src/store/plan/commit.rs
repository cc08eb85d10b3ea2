//! The commit plan both stores follow: which rows a call writes and what it answers, decided here
//! once; a store only executes the statements of each step ([`CommitSql`]).
//!
//! The steps, in order (each one call of [`CommitSql`]):
//!
//! 1. projects not in the writer's cache get ids;
//! 2. the first copy of each `(project, batch id)` in the call is inserted unless stored already;
//!    the others are duplicates or conflicts, told apart by the stored envelope hash (step 3);
//! 4. the resource and scope pairs of accepted batches are encoded once per call and those not in
//!    the writer's cache inserted ([`RESOURCE_CACHE_MAX`]);
//! 5. the traces the spans belong to are looked up, and (6) new ones get sequence numbers;
//! 7. spans pass the per-trace cap ([`TraceCap`]) in arrival order, the first copy of each
//!    `(trace, span id)` in the call is inserted, sorted by `(trace_seq, span_id)` so the rows land
//!    next to each other; the store says which ones were new;
//! 8. the spans actually inserted are aggregated per trace in arrival order (the first parentless
//!    one is the root; start min, end max, span and error counts, the longest span's duration,
//!    the distinct attribute index hashes); rows of new traces are inserted (8) and existing ones
//!    updated (9), by sequence;
//! 10. the attribute index rows, sorted;
//! 11. the statistics rows of the inserted spans (see [`super::stats`]): the stored ones read
//!     (locked in PostgreSQL), 12. new ones inserted and (13) existing ones merged into;
//! 14. the per-project counters;
//! 15. the audit log (unless it is off): each accepted batch is one leaf (index assigned before the spans are
//!     inserted, step 7, so each span row names its leaf; PostgreSQL locks the log's head there),
//!     committing to its identity and the digests of the span rows it inserted
//!     ([`crate::audit::leaf`]); the log's right edge is read (16) and the leaves and the perfect
//!     subtrees they complete are appended (17);
//! 18. nothing more (a fault injected here fails the commit after every statement ran).
//!
//! Project and resource ids handed out in the transaction are remembered only once it committed
//! ([`WriterCache::remember`]): a rolled-back id must never be reused from the cache.

use std::collections::{HashMap, HashSet};

use foldhash::HashMapExt as _;

use tracex_core::{SpanData, StatusCode};

use super::stats::{StatKey, StatRow, StatsAcc, StoredStat};
use crate::audit::leaf::{Claim, Claims, Leaf, rows_sha256, span_digest};
use crate::audit::tree::{self, NodeId, Nodes};
use crate::store::common::{
    Admit, TraceCap, encode_resource_body, encode_span_body, ns, same_envelope, span_attr_hashes,
};
use crate::store::{CommitOutcome, NewBatch, StoreError};

/// Resource hashes remembered by the writer; the map is simply cleared when it grows past this.
pub(crate) const RESOURCE_CACHE_MAX: usize = 4096;

/// A batch's identity within the database: `(project id, batch id)`.
pub(crate) type BatchKey = (i64, [u8; 16]);

/// A trace's identity within the database: `(project id, trace id)`.
pub(crate) type TraceKey = (i64, [u8; 16]);

/// What the writer remembers between commits: committed project names and resource hashes with
/// their ids.
#[derive(Debug, Default)]
pub(crate) struct WriterCache {
    projects: HashMap<String, i64>,
    resources: HashMap<[u8; 32], i64>,
}

impl WriterCache {
    /// Remembers the ids a committed transaction handed out.
    pub(crate) fn remember(&mut self, ids: NewIds) {
        self.projects.extend(ids.projects);
        if self.resources.len() + ids.resources.len() > RESOURCE_CACHE_MAX {
            self.resources.clear();
        }
        self.resources.extend(ids.resources);
    }
}

/// Ids handed out by one commit's transaction (see [`WriterCache::remember`]).
#[derive(Debug, Default)]
pub(crate) struct NewIds {
    projects: HashMap<String, i64>,
    resources: HashMap<[u8; 32], i64>,
}

/// What a commit did: the outcome of each batch, and the ids to remember once it committed.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) outcomes: Vec<CommitOutcome>,
    pub(crate) ids: NewIds,
}

/// A `batches` row.
pub(crate) struct BatchRow<'a> {
    pub(crate) project_id: i64,
    pub(crate) batch: &'a NewBatch,
}

impl BatchRow<'_> {
    /// `(project id, batch id)`.
    pub(crate) fn key(&self) -> BatchKey {
        (self.project_id, self.batch.batch_id)
    }

    /// `service.name` of the batch's first resource ([`NewBatch::service`]).
    pub(crate) fn service(&self) -> Option<&str> {
        self.batch.service()
    }

    /// Spans the batch carries (stored or not).
    pub(crate) fn span_total(&self) -> i64 {
        i64::try_from(self.batch.request.span_count()).unwrap_or(i64::MAX)
    }
}

/// A `resources` row to insert unless its hash is stored.
pub(crate) struct ResourceRow {
    pub(crate) hash: [u8; 32],
    pub(crate) body: Vec<u8>,
}

/// A `spans` row; the derived columns are methods so both stores compute them the same way.
pub(crate) struct SpanRow<'a> {
    pub(crate) trace_seq: i64,
    pub(crate) resource_id: i64,
    /// `service.name` of the span's resource.
    pub(crate) service: Option<&'a str>,
    pub(crate) span: &'a SpanData,
    /// The span body (see `common::encode_span_body`): encoded once, for the row and its digest.
    pub(crate) body: &'a [u8],
    /// The audit log leaf of the batch that inserts it (`None` with the log off).
    pub(crate) leaf_index: Option<i64>,
}

impl SpanRow<'_> {
    pub(crate) fn span_id(&self) -> &[u8] {
        &self.span.span_id.0
    }

    pub(crate) fn parent_span_id(&self) -> Option<&[u8]> {
        self.span.parent_span_id.as_ref().map(|p| &p.0[..])
    }

    pub(crate) fn kind(&self) -> i32 {
        self.span.kind.as_i32()
    }

    pub(crate) fn start_ns(&self) -> i64 {
        ns(self.span.start_time_unix_nano)
    }

    pub(crate) fn end_ns(&self) -> i64 {
        ns(self.span.end_time_unix_nano)
    }

    pub(crate) fn duration_ns(&self) -> i64 {
        ns(self.span.duration_nanos())
    }

    pub(crate) fn status(&self) -> i32 {
        self.span.status.code as i32
    }
}

/// An `audit_leaves` row.
pub(crate) struct AuditLeafRow {
    pub(crate) index: i64,
    pub(crate) project_id: i64,
    pub(crate) batch_id: [u8; 16],
    /// The leaf's canonical encoding.
    pub(crate) leaf: Vec<u8>,
    /// Its leaf hash.
    pub(crate) hash: [u8; 32],
    /// The encoded claims (`rows_sha256` of the leaf is their hash).
    pub(crate) claims: Vec<u8>,
}

/// A `traces` row to insert, or the increments of an existing one (aggregates of the spans this
/// commit inserted).
#[derive(Debug)]
pub(crate) struct TraceRow<'a> {
    pub(crate) seq: i64,
    pub(crate) project_id: i64,
    pub(crate) trace_id: [u8; 16],
    pub(crate) start: i64,
    pub(crate) end: i64,
    /// Name and service of the first parentless span, borrowed from the batch: an owned copy of
    /// each was two allocations and their frees a new trace (1,176 instructions a one-span trace,
    /// callgrind, `--bench store`).
    pub(crate) root: Option<(&'a str, Option<&'a str>)>,
    pub(crate) spans: i64,
    pub(crate) errors: i64,
    /// The longest span's `duration_ns` (stored as `traces.max_duration_ns`, the maximum over every
    /// span of the trace: an update keeps the larger): a duration filter skips traces whose
    /// longest span is shorter without probing their spans (see [`super::list`]).
    pub(crate) max_duration: i64,
}

impl TraceRow<'_> {
    pub(crate) fn has_root(&self) -> bool {
        self.root.is_some()
    }

    pub(crate) fn root_name(&self) -> Option<&str> {
        self.root.map(|(n, _)| n)
    }

    pub(crate) fn root_service(&self) -> Option<&str> {
        self.root.and_then(|(_, s)| s)
    }
}

/// A `trace_attrs` row: `(project id, attribute hash, trace sequence number)`.
pub(crate) type AttrRow = (i64, i64, i64);

/// A per-project counter increment: `(project id, spans, batches)`.
pub(crate) type CounterRow = (i64, i64, i64);

/// The statements of a commit, run inside the store's transaction. Each method is one step of the
/// plan (see the module docs); rows come in the order to write them.
pub(crate) trait CommitSql {
    /// A store error, or a reason to retry the whole commit.
    type Error: From<StoreError>;

    /// Creates the projects named (sorted, distinct) that do not exist; returns every one's id.
    fn project_ids(&mut self, names: &[&str]) -> Result<HashMap<String, i64>, Self::Error>;

    /// Inserts the batch rows (sorted by key, distinct) whose key is not stored yet; true for each
    /// row inserted.
    fn insert_batches(&mut self, rows: &[BatchRow<'_>]) -> Result<Vec<bool>, Self::Error>;

    /// The envelope hash stored under each key (`None` when NULL).
    fn stored_envelopes(&mut self, keys: &[BatchKey]) -> Result<HashMap<BatchKey, Option<Vec<u8>>>, Self::Error>;

    /// Inserts the resources whose hash is not stored yet; returns the id of each row's hash.
    fn resource_ids(&mut self, rows: &[ResourceRow]) -> Result<HashMap<[u8; 32], i64>, Self::Error>;

    /// For each trace, its sequence number and span count if it has a row.
    fn existing_traces(&mut self, keys: &[TraceKey]) -> Result<Vec<Option<(i64, u64)>>, Self::Error>;

    /// A new, unique sequence number for each new trace, given the earliest start (unix ns) of
    /// its spans in this call, in the same order (the PostgreSQL store puts the trace's day into
    /// the number; the embedded store counts up).
    fn new_trace_seqs(&mut self, starts: &[u64]) -> Result<Vec<i64>, Self::Error>;

    /// Inserts the spans whose `(trace_seq, span_id)` is not stored yet; true for each row inserted.
    fn insert_spans(&mut self, rows: &[SpanRow<'_>]) -> Result<Vec<bool>, Self::Error>;

    /// Inserts rows for new traces.
    fn insert_traces(&mut self, rows: &[TraceRow<'_>]) -> Result<(), Self::Error>;

    /// Adds to existing trace rows: start min, end max, the root if they have none, the counts,
    /// the longest span's duration max.
    fn update_traces(&mut self, rows: &[TraceRow<'_>]) -> Result<(), Self::Error>;

    /// Sorts attribute index rows in the store's index key order, so that consecutive inserts land
    /// on neighbouring B-tree pages, and inserts those not stored yet.
    fn insert_trace_attrs(&mut self, rows: &mut [AttrRow]) -> Result<(), Self::Error>;

    /// The statistics rows stored under `keys` (sorted), one answer per key; PostgreSQL locks them
    /// until the transaction ends.
    fn stored_stats(&mut self, keys: &[StatKey<'_>]) -> Result<Vec<Option<StoredStat>>, Self::Error>;

    /// Inserts statistics rows under keys not stored yet (sorted).
    fn insert_stats(&mut self, rows: &[StatRow<'_>]) -> Result<(), Self::Error>;

    /// Overwrites statistics rows with their merged values (sorted).
    fn update_stats(&mut self, rows: &[StatRow<'_>]) -> Result<(), Self::Error>;

    /// Adds to the projects' span and batch counters (sorted by project).
    fn add_to_counters(&mut self, rows: &[CounterRow]) -> Result<(), Self::Error>;

    /// Leaves in the audit log; PostgreSQL locks the log's head until the transaction ends (leaf
    /// indexes are handed out in order, one writer at a time).
    fn audit_size(&mut self) -> Result<u64, Self::Error>;

    /// The stored nodes named (level 0: leaf hashes); a node not stored is absent from the answer.
    fn audit_nodes(&mut self, ids: &[NodeId]) -> Result<Nodes, Self::Error>;

    /// Appends leaves (in index order, from `audit_size`) and the perfect subtrees of level ≥ 1
    /// they complete; the log then holds `new_size` leaves.
    fn append_audit(
        &mut self,
        leaves: &[AuditLeafRow],
        nodes: &[(NodeId, [u8; 32])],
        new_size: u64,
    ) -> Result<(), Self::Error>;
}

/// In tests, makes commits fail before a chosen step (after the earlier steps' statements ran in
/// the transaction), to check that a failed commit stores nothing; nothing in other builds.
#[derive(Debug, Default)]
pub(crate) struct FaultHook {
    /// The step (1-based) that fails; 0: none.
    #[cfg(test)]
    fail_at: std::sync::atomic::AtomicUsize,
}

impl FaultHook {
    /// Makes every later commit fail before step `step` (`None`: never).
    #[cfg(test)]
    pub(crate) fn fail_at(&self, step: Option<usize>) {
        self.fail_at.store(step.unwrap_or(0), std::sync::atomic::Ordering::SeqCst);
    }

    /// Counts a step; an error when a test chose to fail it.
    #[cfg_attr(
        not(test),
        allow(clippy::unused_self, clippy::unnecessary_wraps, reason = "the fault hook is compiled in tests only")
    )]
    fn step(&self, n: &mut usize) -> Result<(), StoreError> {
        *n += 1;
        #[cfg(test)]
        if self.fail_at.load(std::sync::atomic::Ordering::SeqCst) == *n {
            return Err(StoreError::Database(format!("injected fault before commit step {n}")));
        }
        Ok(())
    }
}

/// A span of an accepted batch, in arrival order.
struct SpanIn<'a> {
    batch: usize,
    /// Its place in its batch's request ([`crate::store::PreparedSpans`] order).
    k: usize,
    trace: usize,
    resource: usize,
    service: Option<&'a str>,
    span: &'a SpanData,
}

/// A trace touched by the call.
struct TraceIn {
    key: TraceKey,
    seq: i64,
    is_new: bool,
    /// Spans the trace held before this commit.
    stored_before: u64,
}

/// Most traces a commit reserves room for before it knows how many its spans hold (a commit of
/// 64 batches of 1,024 one-span traces; beyond, the map and list grow).
const TRACES_RESERVED_MAX: usize = 65_536;

/// The aggregate of one trace's spans inserted by the call.
struct TraceAgg<'a> {
    row: TraceRow<'a>,
    /// Distinct `trace_attrs` hashes of the trace's new spans.
    hashes: Vec<i64>,
}

/// Runs the commit plan for `batches` on `sql` (inside the store's transaction); `max_spans` is the
/// per-trace cap.
pub(crate) fn run<S: CommitSql>(
    sql: &mut S,
    cache: &WriterCache,
    batches: &[NewBatch],
    max_spans: u64,
    audit: bool,
    fault: &FaultHook,
) -> Result<Committed, S::Error> {
    let mut step = 0;

    // --- projects
    fault.step(&mut step)?;
    let mut missing: Vec<&str> =
        batches.iter().map(|b| b.project.as_str()).filter(|p| !cache.projects.contains_key(*p)).collect();
    missing.sort_unstable();
    missing.dedup();
    let new_projects = if missing.is_empty() { HashMap::new() } else { sql.project_ids(&missing)? };
    let mut keys: Vec<BatchKey> = Vec::with_capacity(batches.len());
    for b in batches {
        let id = cache.projects.get(&b.project).or_else(|| new_projects.get(&b.project)).copied();
        let id = id.ok_or_else(|| StoreError::Database(format!("project {:?} has no id", b.project)))?;
        keys.push((id, b.batch_id));
    }

    // --- batches: the first copy of each key in this call is inserted if new
    fault.step(&mut step)?;
    let mut seen = HashSet::new();
    let mut order: Vec<usize> = (0..batches.len()).filter(|i| seen.insert(keys[*i])).collect();
    order.sort_unstable_by_key(|i| keys[*i]);
    let rows: Vec<BatchRow<'_>> =
        order.iter().map(|i| BatchRow { project_id: keys[*i].0, batch: &batches[*i] }).collect();
    let inserted = sql.insert_batches(&rows)?;
    let mut accepted = vec![false; batches.len()];
    for (i, ok) in order.iter().zip(inserted) {
        accepted[*i] = ok;
    }
    // The envelope hashes now stored under the ids of batches not accepted (stored earlier, or
    // earlier in this call): same hash, a retry; another, a conflict.
    fault.step(&mut step)?;
    let rejected: Vec<BatchKey> = (0..batches.len()).filter(|i| !accepted[*i]).map(|i| keys[i]).collect();
    let stored_envelopes = if rejected.is_empty() { HashMap::new() } else { sql.stored_envelopes(&rejected)? };

    // --- resources, traces and spans of the accepted batches
    fault.step(&mut step)?;
    let mut body = Vec::with_capacity(1024);
    let mut resource_hashes: Vec<[u8; 32]> = Vec::new();
    let mut resource_index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut new_resources: Vec<ResourceRow> = Vec::new();
    // Sized for the accepted spans (at most one trace each) once: grown from empty, the trace map
    // rehashed each key about once more (589 instructions a one-span trace, callgrind). The
    // traces' room is capped: a large commit of long traces would reserve far more than it uses.
    let offered: usize =
        batches.iter().zip(&accepted).filter(|(_, ok)| **ok).map(|(b, _)| b.request.span_count()).sum();
    let mut traces: Vec<TraceIn> = Vec::with_capacity(offered.min(TRACES_RESERVED_MAX));
    // foldhash, seeded as std's SipHash is: with it the writer runs 3 % fewer instructions (callgrind).
    let mut trace_index: foldhash::HashMap<TraceKey, usize> =
        foldhash::HashMap::with_capacity(offered.min(TRACES_RESERVED_MAX));
    let mut spans: Vec<SpanIn<'_>> = Vec::with_capacity(offered);
    let mut last_trace: Option<(TraceKey, usize)> = None;
    for (i, b) in batches.iter().enumerate() {
        if !accepted[i] {
            continue;
        }
        let project_id = keys[i].0;
        let mut k = 0;
        for rs in &b.request.resource_spans {
            let service = rs.resource.service_name();
            for ss in &rs.scope_spans {
                if ss.spans.is_empty() {
                    continue;
                }
                let hash = encode_resource_body(&rs.resource, &ss.scope, &mut body);
                let resource = *resource_index.entry(hash).or_insert_with(|| {
                    resource_hashes.push(hash);
                    if !cache.resources.contains_key(&hash) {
                        new_resources.push(ResourceRow { hash, body: body.clone() });
                    }
                    resource_hashes.len() - 1
                });
                for span in &ss.spans {
                    let key = (project_id, span.trace_id.0);
                    // A trace's spans mostly come one after another: the map only when it changes.
                    let trace = match last_trace {
                        Some((k, t)) if k == key => t,
                        _ => *trace_index.entry(key).or_insert_with(|| {
                            traces.push(TraceIn { key, seq: 0, is_new: true, stored_before: 0 });
                            traces.len() - 1
                        }),
                    };
                    last_trace = Some((key, trace));
                    spans.push(SpanIn { batch: i, k, trace, resource, service, span });
                    k += 1;
                }
            }
        }
    }
    let new_resource_ids = if new_resources.is_empty() { HashMap::new() } else { sql.resource_ids(&new_resources)? };
    let mut resource_ids = Vec::with_capacity(resource_hashes.len());
    for h in &resource_hashes {
        let id = cache.resources.get(h).or_else(|| new_resource_ids.get(h)).copied();
        resource_ids.push(id.ok_or_else(|| StoreError::Database("a resource has no id".into()))?);
    }

    // --- traces: existing ones by lookup, new ones get sequence numbers
    fault.step(&mut step)?;
    if !traces.is_empty() {
        let keys: Vec<TraceKey> = traces.iter().map(|t| t.key).collect();
        for (t, found) in traces.iter_mut().zip(sql.existing_traces(&keys)?) {
            if let Some((seq, count)) = found {
                t.seq = seq;
                t.stored_before = count;
                t.is_new = false;
            }
        }
    }
    fault.step(&mut step)?;
    let fresh = traces.iter().filter(|t| t.is_new).count();
    if fresh > 0 {
        let mut first_start = vec![u64::MAX; traces.len()];
        for s in &spans {
            first_start[s.trace] = first_start[s.trace].min(s.span.start_time_unix_nano);
        }
        let starts: Vec<u64> =
            traces.iter().zip(&first_start).filter(|(t, _)| t.is_new).map(|(_, start)| *start).collect();
        let seqs = sql.new_trace_seqs(&starts)?;
        if seqs.len() != fresh {
            return Err(StoreError::Database("the trace sequence handed out too few numbers".into()).into());
        }
        for (t, seq) in traces.iter_mut().filter(|t| t.is_new).zip(seqs) {
            t.seq = seq;
        }
    }

    // --- the audit log (when on): each accepted batch's leaf index, in call order
    let first_leaf = if audit && accepted.contains(&true) { sql.audit_size()? } else { 0 };
    let mut leaf_of: Vec<Option<u64>> = vec![None; batches.len()];
    if audit {
        for (n, i) in (0..batches.len()).filter(|i| accepted[*i]).enumerate() {
            leaf_of[i] = Some(first_leaf + n as u64);
        }
    }

    // --- spans: the first copy of each (trace, span id) in this call, in trace order, once the
    // per-trace cap admitted it (in arrival order)
    fault.step(&mut step)?;
    let mut order: Vec<usize> = Vec::with_capacity(spans.len());
    let mut over_cap = vec![0usize; batches.len()];
    {
        let mut cap = TraceCap::new(max_spans, traces.len(), spans.len());
        for (i, s) in spans.iter().enumerate() {
            match cap.admit(s.trace, s.span.span_id.0, traces[s.trace].stored_before) {
                Admit::First => order.push(i),
                Admit::Again => {}
                Admit::OverCap => over_cap[s.batch] += 1,
            }
        }
    }
    // Keyed once, not through two indirections a comparison (the span id as a big-endian integer
    // orders as its bytes do; the index last keeps ties, which admitted spans never have, in
    // arrival order): 207 instructions a span fewer for the writer (callgrind, --bench store).
    let mut keyed: Vec<(i64, u64, usize)> =
        order.iter().map(|&i| (traces[spans[i].trace].seq, u64::from_be_bytes(spans[i].span.span_id.0), i)).collect();
    keyed.sort_unstable();
    let order: Vec<usize> = keyed.into_iter().map(|(_, _, i)| i).collect();
    // Bodies are encoded once: the row stores them, the audit digest hashes them. Batches prepared
    // before the writer bring theirs; the others are encoded here, into one buffer.
    let prepared = |s: &SpanIn<'_>| batches[s.batch].prepared.as_ref().and_then(|p| p.body(s.k));
    let mut bodies: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::with_capacity(order.len());
    for i in &order {
        if prepared(&spans[*i]).is_none() {
            encode_span_body(spans[*i].span, &mut body);
            bodies.extend_from_slice(&body);
        }
        ends.push(bodies.len());
    }
    let rows: Vec<SpanRow<'_>> = order
        .iter()
        .zip(&ends)
        .scan(0, |from, (i, to)| {
            let s = &spans[*i];
            let start = std::mem::replace(from, *to);
            Some(SpanRow {
                trace_seq: traces[s.trace].seq,
                resource_id: resource_ids[s.resource],
                service: s.service,
                span: s.span,
                body: prepared(s).unwrap_or(&bodies[start..*to]),
                leaf_index: leaf_of[s.batch].map(ns),
            })
        })
        .collect();
    let done = if rows.is_empty() { Vec::new() } else { sql.insert_spans(&rows)? };
    let mut inserted = vec![false; spans.len()];
    let mut stored = vec![0usize; batches.len()];
    for (i, ok) in order.iter().zip(&done) {
        inserted[*i] = *ok;
        stored[spans[*i].batch] += usize::from(*ok);
    }
    // A batch whose every span was inserted brings its claims encoded and hashed (prepared before
    // the writer); the writer gathers the claims of the others, of the spans it inserted.
    let prepared_claims = |b: usize| batches[b].prepared.as_ref().and_then(|p| p.claims(stored[b]));
    let mut claims: Vec<Claims> = vec![Claims::default(); batches.len()];
    let gather: Vec<bool> = (0..batches.len()).map(|b| audit && prepared_claims(b).is_none()).collect();
    for ((i, ok), row) in order.iter().zip(done).zip(&rows) {
        if ok && gather[spans[*i].batch] {
            let s = &spans[*i];
            let trace_id = &traces[s.trace].key.1;
            claims[s.batch].0.push(Claim {
                trace_id: *trace_id,
                span_id: s.span.span_id.0,
                start_unix_nano: s.span.start_time_unix_nano,
                digest: batches[s.batch].prepared.as_ref().and_then(|p| p.digest(s.k)).unwrap_or_else(|| {
                    span_digest(trace_id, &s.span.span_id.0, &resource_hashes[s.resource], row.body)
                }),
            });
        }
    }
    drop(rows);

    // --- aggregates, in arrival order (the first parentless span is the root)
    let mut aggs: Vec<Option<TraceAgg>> = traces.iter().map(|_| None).collect();
    let mut text = String::with_capacity(128);
    let mut stats = StatsAcc::default();
    for (i, s) in spans.iter().enumerate() {
        if !inserted[i] {
            continue;
        }
        let t = &traces[s.trace];
        stats.add(t.key.0, s.service, s.span);
        let agg = aggs[s.trace].get_or_insert_with(|| TraceAgg {
            row: TraceRow {
                seq: t.seq,
                project_id: t.key.0,
                trace_id: t.key.1,
                start: i64::MAX,
                end: i64::MIN,
                root: None,
                spans: 0,
                errors: 0,
                max_duration: 0,
            },
            // Room for the first span's hashes (prepared, or a typical count): grown from empty,
            // a one-span trace's eight took two reallocations (334 instructions a span, callgrind).
            hashes: Vec::with_capacity(
                batches[s.batch].prepared.as_ref().and_then(|p| p.attr_hashes(s.k)).map_or(8, <[i64]>::len),
            ),
        });
        let span = s.span;
        let row = &mut agg.row;
        row.start = row.start.min(ns(span.start_time_unix_nano));
        row.end = row.end.max(ns(span.end_time_unix_nano));
        // The same value as the span row's `duration_ns` column (`SpanRow::duration_ns`).
        row.max_duration = row.max_duration.max(ns(span.duration_nanos()));
        row.spans += 1;
        if span.status.code == StatusCode::Error {
            row.errors += 1;
        }
        if span.parent_span_id.is_none() && row.root.is_none() {
            row.root = Some((&*span.name, s.service));
        }
        let hashes = &mut agg.hashes;
        let add = |h: i64| {
            if !hashes.contains(&h) {
                hashes.push(h);
            }
        };
        match batches[s.batch].prepared.as_ref().and_then(|p| p.attr_hashes(s.k)) {
            Some(prepared) => prepared.iter().copied().for_each(add),
            None => span_attr_hashes(s.service, span, &mut text, add),
        }
    }

    // --- trace rows, in sequence order: insert the new, update the existing
    let mut touched: Vec<(bool, TraceAgg)> =
        traces.iter().zip(aggs).filter_map(|(t, a)| a.map(|a| (t.is_new, a))).collect();
    touched.sort_unstable_by_key(|(_, a)| a.row.seq);
    let mut attr_rows: Vec<AttrRow> =
        touched.iter().flat_map(|(_, a)| a.hashes.iter().map(|h| (a.row.project_id, *h, a.row.seq))).collect();
    let (fresh, existing): (Vec<_>, Vec<_>) = touched.into_iter().partition(|(is_new, _)| *is_new);
    let fresh: Vec<TraceRow<'_>> = fresh.into_iter().map(|(_, a)| a.row).collect();
    let existing: Vec<TraceRow<'_>> = existing.into_iter().map(|(_, a)| a.row).collect();
    fault.step(&mut step)?;
    if !fresh.is_empty() {
        sql.insert_traces(&fresh)?;
    }
    fault.step(&mut step)?;
    if !existing.is_empty() {
        sql.update_traces(&existing)?;
    }

    // --- the attribute index, sorted by the store
    fault.step(&mut step)?;
    if !attr_rows.is_empty() {
        sql.insert_trace_attrs(&mut attr_rows)?;
    }

    // --- statistics: read what the keys hold, merge, write back
    fault.step(&mut step)?;
    let stats = stats.finish()?;
    let stat_keys = stats.keys();
    let stored_stats = if stat_keys.is_empty() { Vec::new() } else { sql.stored_stats(&stat_keys)? };
    let (new_stats, merged_stats) = stats.rows(stored_stats)?;
    fault.step(&mut step)?;
    if !new_stats.is_empty() {
        sql.insert_stats(&new_stats)?;
    }
    fault.step(&mut step)?;
    if !merged_stats.is_empty() {
        sql.update_stats(&merged_stats)?;
    }

    // --- outcomes and counters
    fault.step(&mut step)?;
    let mut counters: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batches.len());
    for (i, key) in keys.iter().enumerate() {
        if accepted[i] {
            let c = counters.entry(key.0).or_default();
            c.0 += i64::try_from(stored[i]).unwrap_or(i64::MAX);
            c.1 += 1;
            outcomes.push(CommitOutcome::Stored { spans: stored[i], over_cap: over_cap[i], leaf_index: leaf_of[i] });
        } else {
            let stored = stored_envelopes.get(key).and_then(Option::as_deref);
            outcomes.push(same_envelope(stored, &batches[i].envelope_sha256));
        }
    }
    let mut counters: Vec<CounterRow> = counters.into_iter().map(|(p, (s, b))| (p, s, b)).collect();
    counters.sort_unstable();
    if !counters.is_empty() {
        sql.add_to_counters(&counters)?;
    }

    // --- the audit log: one leaf per accepted batch, then the subtrees they complete
    fault.step(&mut step)?;
    let mut leaves: Vec<AuditLeafRow> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let Some(index) = leaf_of[i] else { continue };
        let (encoded, rows_sha256) = match prepared_claims(i) {
            Some(c) => (c.encoded.clone(), c.rows_sha256),
            None => {
                let encoded = claims[i].encode();
                let hash = rows_sha256(&encoded);
                (encoded, hash)
            }
        };
        let leaf = Leaf {
            project: b.project.clone(),
            batch_id: b.batch_id,
            instance_id: b.instance_id,
            sequence: b.sequence,
            created_at_unix_nano: b.created_at_unix_nano,
            received_at_unix_nano: b.received_at_unix_nano,
            envelope_sha256: b.envelope_sha256,
            origin: b.origin,
            spans: u32::try_from(stored[i]).unwrap_or(u32::MAX),
            rows_sha256,
            claims_format: Claims::FORMAT,
        };
        let leaf = leaf.encode();
        leaves.push(AuditLeafRow {
            index: ns(index),
            project_id: keys[i].0,
            batch_id: b.batch_id,
            hash: tracex_core::audit::leaf_hash(&leaf),
            leaf,
            claims: encoded,
        });
    }
    fault.step(&mut step)?;
    if leaves.is_empty() {
        fault.step(&mut step)?;
    } else {
        let mut edge = sql.audit_nodes(&tree::frontier(first_leaf))?;
        let hashes: Vec<[u8; 32]> = leaves.iter().map(|l| l.hash).collect();
        let nodes = tree::append(first_leaf, &hashes, &mut edge).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let upper: Vec<(NodeId, [u8; 32])> = nodes.into_iter().filter(|((level, _), _)| *level > 0).collect();
        fault.step(&mut step)?;
        sql.append_audit(&leaves, &upper, first_leaf + leaves.len() as u64)?;
    }
    fault.step(&mut step)?;
    Ok(Committed { outcomes, ids: NewIds { projects: new_projects, resources: new_resource_ids } })
}
