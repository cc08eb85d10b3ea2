//! `tracex-collector audit verify`: recomputes the log from the store and checks it against itself,
//! the rows, the signed checkpoints and any checkpoint a witness kept, naming every batch and span
//! that was altered, deleted or inserted.
//!
//! 1. Leaves, in order: each stored hash is the hash of its encoding, each encoding parses, its
//!    `rows_sha256` is the hash of its claims. The tree is recomputed from the leaf hashes (a
//!    compact range: O(log n) memory) and its root compared, at every checkpoint's size, with the
//!    checkpoint (whose signature is checked) and with the root the stored nodes give.
//! 2. Rows, leaf by leaf: each claimed span's row is read and its digest recomputed (against the
//!    claim's digest, or its tag and then its trace group's digest: `leaf`'s claim formats); its
//!    derived columns are checked against its body, its resource row against its hash. A claimed
//!    row that is gone is *expired* when its whole trace is gone and it started (with V2 claims:
//!    the trace's latest span in the batch started) before the retention horizon (plus
//!    [`RETENTION_SLACK_NS`]), *deleted* otherwise.
//! 3. Rows no leaf claims: if more rows name a leaf than the leaves' claims found, every row is
//!    scanned and those not claimed by the leaf they name are *inserted*; rows naming no leaf are
//!    reported apart (stored before the log existed, or inserted outside it). Rows of leaves
//!    appended after verification began (a collector serving meanwhile) are left for the next run;
//!    a row naming a leaf that does not exist even after the scan is inserted.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracex_core::audit::{Checkpoint, Hash, VerifierKey, node_hash};

use super::leaf::{Claims, GroupCheck, Leaf, SpanDigest, StoredClaims, group_digest, rows_sha256, span_digest};
use super::{LeafRecord, RowLookup, RowRecord, tree};
use crate::services::retention::RetentionPolicy;
use crate::store::common::{decode_resource_body, decode_span_body, ns};
use crate::store::{Store, StoreError, StoreResult};

/// Leaves read per store call.
const LEAVES_PER_PAGE: usize = 1024;
/// Rows read per scan call (step 3).
const ROWS_PER_PAGE: usize = 10_000;
/// Most findings listed (all are counted).
pub const MAX_FINDINGS: usize = 1000;
/// A span of a trace that is gone counts as expired up to this long after the retention horizon:
/// retention removes traces by their *start*, and a trace's later spans start after it.
pub const RETENTION_SLACK_NS: u64 = 3_600 * 1_000_000_000;

/// What verification needs besides the store.
#[derive(Debug, Default)]
pub struct Options {
    /// The audit key, to check checkpoint signatures (`None`: signatures unchecked, said so).
    pub key: Option<VerifierKey>,
    /// Checkpoints kept elsewhere (a witness, an SDK user): the log must extend each of them.
    pub saved_checkpoints: Vec<String>,
    /// Retention settings, to tell expired spans from deleted ones.
    pub retention: RetentionPolicy,
    /// Now (unix ns).
    pub now_unix_nano: u64,
    /// Rows that name no leaf are counted, not reported (a store upgraded from before the log
    /// holds them legitimately; in a store created with the log they can only be inserted).
    pub unlogged_ok: bool,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A leaf's stored hash, encoding or claims do not agree.
    LeafAltered {
        /// The leaf.
        index: u64,
        /// How.
        why: String,
    },
    /// A claimed span's row differs from what the leaf committed to.
    SpanAltered {
        /// Its batch's leaf.
        index: u64,
        /// Project.
        project: String,
        /// Its batch.
        batch_id: [u8; 16],
        /// Its trace.
        trace_id: [u8; 16],
        /// The span.
        span_id: [u8; 8],
        /// What differs.
        what: String,
    },
    /// A claimed span's row is gone (and not by retention).
    SpanDeleted {
        /// Its batch's leaf.
        index: u64,
        /// Project.
        project: String,
        /// Its batch.
        batch_id: [u8; 16],
        /// Its trace.
        trace_id: [u8; 16],
        /// The span.
        span_id: [u8; 8],
    },
    /// A span row no leaf claims.
    SpanInserted {
        /// Project (empty when its trace row is gone too).
        project: String,
        /// Its trace.
        trace_id: [u8; 16],
        /// The span.
        span_id: [u8; 8],
        /// The leaf it names, if any.
        names_leaf: Option<u64>,
    },
    /// A resource row's body does not hash to its stored hash.
    ResourceAltered {
        /// Its id.
        id: i64,
    },
    /// The tree's stored nodes do not give the root the leaves do.
    TreeAltered {
        /// At this size.
        size: u64,
    },
    /// A stored checkpoint does not verify or does not match the recomputed log.
    CheckpointBad {
        /// Its size.
        size: u64,
        /// Why.
        why: String,
    },
    /// The log does not extend a checkpoint kept elsewhere: rolled back or forked.
    NotAnExtension {
        /// The kept checkpoint's size.
        size: u64,
        /// Why.
        why: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = |t: &[u8; 16], s: &[u8; 8]| format!("span {}/{}", hex::encode(t), hex::encode(s));
        match self {
            Self::LeafAltered { index, why } => write!(f, "leaf {index} altered: {why}"),
            Self::SpanAltered { index, project, batch_id, trace_id, span_id, what } => write!(
                f,
                "altered: project {project:?} batch {} (leaf {index}) {}: {what}",
                hex::encode(batch_id),
                span(trace_id, span_id)
            ),
            Self::SpanDeleted { index, project, batch_id, trace_id, span_id } => write!(
                f,
                "deleted: project {project:?} batch {} (leaf {index}) {}",
                hex::encode(batch_id),
                span(trace_id, span_id)
            ),
            Self::SpanInserted { project, trace_id, span_id, names_leaf } => {
                write!(f, "inserted: project {project:?} {}", span(trace_id, span_id))?;
                match names_leaf {
                    Some(l) => write!(f, " (names leaf {l}, which does not claim it)"),
                    None => write!(f, " (names no leaf: stored before the log existed, or outside it)"),
                }
            }
            Self::ResourceAltered { id } => write!(f, "altered: resource row {id} does not match its hash"),
            Self::TreeAltered { size } => write!(f, "the stored tree's root at size {size} is not the leaves' root"),
            Self::CheckpointBad { size, why } => write!(f, "checkpoint at size {size}: {why}"),
            Self::NotAnExtension { size, why } => {
                write!(f, "the log does not extend the kept checkpoint of size {size}: {why}")
            }
        }
    }
}

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Leaves checked.
    pub leaves: u64,
    /// Claimed spans whose rows were checked.
    pub spans_checked: u64,
    /// Claimed spans removed by retention.
    pub spans_expired: u64,
    /// Span rows naming no leaf.
    pub rows_unlogged: u64,
    /// Stored checkpoints checked.
    pub checkpoints: u64,
    /// Whether signatures were checked.
    pub signatures_checked: bool,
    /// Problems, all counted; the first [`MAX_FINDINGS`] listed.
    pub findings: Vec<Finding>,
    /// Problems in all.
    pub problems: u64,
    /// Seconds it took.
    pub seconds: f64,
}

impl Report {
    fn add(&mut self, f: Finding) {
        self.problems += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        }
    }
}

/// Resource rows already checked: their stored hash and service when the body matches the hash.
type Resources = HashMap<i64, Option<([u8; 32], Option<String>)>>;

/// The root of a tree being rebuilt leaf by leaf: perfect subtrees, largest first.
#[derive(Default)]
struct Compact(Vec<(u32, Hash)>);

impl Compact {
    fn push(&mut self, leaf: Hash) {
        let (mut level, mut h) = (0, leaf);
        while let Some((l, left)) = self.0.last().copied().filter(|(l, _)| *l == level) {
            self.0.pop();
            h = node_hash(&left, &h);
            level = l + 1;
        }
        self.0.push((level, h));
    }

    fn root(&self) -> Option<Hash> {
        let mut it = self.0.iter().rev();
        let mut h = it.next()?.1;
        for (_, left) in it {
            h = node_hash(left, &h);
        }
        Some(h)
    }
}

/// Checks a checkpoint note: signature (when the key is known) and fields.
fn open_checkpoint(note: &str, key: Option<&VerifierKey>) -> Result<Checkpoint, String> {
    match key {
        Some(k) => Checkpoint::open(note, k.name(), k).map_err(|e| e.to_string()),
        None => {
            let text = note.rfind("\n\n").map_or(note, |at| &note[..=at]);
            Checkpoint::parse(text).map_err(|e| e.to_string())
        }
    }
}

/// Verifies the whole log and every row it claims.
pub fn verify(store: &dyn Store, opts: &Options) -> StoreResult<Report> {
    let started = Instant::now();
    let mut report = Report { signatures_checked: opts.key.is_some(), ..Report::default() };
    let size = store.audit_size()?;

    // The sizes whose roots are compared: every stored checkpoint, every kept one, the log's.
    let stored: Vec<_> = {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = store.checkpoints(from, 1000)?;
            let Some(last) = page.last() else { break };
            from = last.size + 1;
            all.extend(page);
        }
        all
    };
    let mut expect: HashMap<u64, Vec<(bool, Hash)>> = HashMap::new();
    for c in &stored {
        report.checkpoints += 1;
        match open_checkpoint(&c.note, opts.key.as_ref()) {
            // An untimed note (signed before the time line existed) leaves the time column unchecked.
            Ok(cp)
                if cp.size != c.size
                    || cp.root != c.root
                    || cp.signed_at_unix_nano.is_some_and(|t| t != c.signed_at_unix_nano) =>
            {
                report.add(Finding::CheckpointBad {
                    size: c.size,
                    why: "its columns differ from its signed note".into(),
                });
            }
            Ok(cp) if cp.size > size => report.add(Finding::CheckpointBad {
                size: cp.size,
                why: format!("signed for {} leaves, the log holds {size}: leaves were removed", cp.size),
            }),
            Ok(cp) => expect.entry(cp.size).or_default().push((false, cp.root)),
            Err(why) => report.add(Finding::CheckpointBad { size: c.size, why }),
        }
    }
    for note in &opts.saved_checkpoints {
        match open_checkpoint(note, opts.key.as_ref()) {
            Ok(cp) if cp.size > size => report.add(Finding::NotAnExtension {
                size: cp.size,
                why: format!("the log holds only {size} leaves: it was rolled back"),
            }),
            Ok(cp) if cp.size == 0 => {}
            Ok(cp) => expect.entry(cp.size).or_default().push((true, cp.root)),
            Err(why) => report.add(Finding::NotAnExtension { size: 0, why: format!("the kept checkpoint: {why}") }),
        }
    }
    if size > 0 {
        expect.entry(size).or_default();
    }

    // 1 and 2: leaves in order, the tree rebuilt, the rows each claims.
    let mut compact = Compact::default();
    let mut resources = Resources::new();
    let mut found_logged = 0u64;
    let mut next = 0u64;
    while next < size {
        let page = store.audit_leaves(next, LEAVES_PER_PAGE)?;
        if page.is_empty() {
            return Err(StoreError::Corrupt(format!("the log holds {size} leaves but none from {next}")));
        }
        for record in &page {
            if record.index != next {
                report
                    .add(Finding::LeafAltered { index: next, why: format!("missing (the next is {})", record.index) });
                return Ok(finish(report, started));
            }
            compact.push(record.hash);
            next += 1;
            if let Some(roots) = expect.get(&next) {
                check_roots(store, next, compact.root(), roots, &mut report)?;
            }
            found_logged += check_leaf(store, record, opts, &mut resources, &mut report)?;
        }
    }

    // 3: rows no leaf claims.
    let (total, logged) = store.audit_span_totals()?;
    report.rows_unlogged = total - logged;
    if logged > found_logged || report.rows_unlogged > 0 && !opts.unlogged_ok {
        find_unclaimed(store, size, opts.unlogged_ok, &mut report)?;
    }
    Ok(finish(report, started))
}

fn finish(mut report: Report, started: Instant) -> Report {
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn check_roots(
    store: &dyn Store,
    size: u64,
    recomputed: Option<Hash>,
    roots: &[(bool, Hash)],
    report: &mut Report,
) -> StoreResult<()> {
    let Some(recomputed) = recomputed else { return Ok(()) };
    for (kept, root) in roots {
        if *root != recomputed {
            let why = "its root is not the root of the stored leaves: the log was rewritten".to_owned();
            report.add(if *kept {
                Finding::NotAnExtension { size, why }
            } else {
                Finding::CheckpointBad { size, why }
            });
        }
    }
    let nodes = store.audit_nodes(&tree::root_nodes(size))?;
    if tree::root(size, &nodes).ok() != Some(recomputed) {
        report.add(Finding::TreeAltered { size });
    }
    Ok(())
}

/// Checks one leaf and its rows; returns how many rows were found naming it.
fn check_leaf(
    store: &dyn Store,
    record: &LeafRecord,
    opts: &Options,
    resources: &mut Resources,
    report: &mut Report,
) -> StoreResult<u64> {
    report.leaves += 1;
    let index = record.index;
    if tracex_core::audit::leaf_hash(&record.leaf) != record.hash {
        report.add(Finding::LeafAltered { index, why: "its encoding does not hash to its stored hash".into() });
    }
    let leaf = match Leaf::decode(&record.leaf) {
        Ok(l) => l,
        Err(e) => {
            report.add(Finding::LeafAltered { index, why: e.to_string() });
            return Ok(0);
        }
    };
    if rows_sha256(&record.claims) != leaf.rows_sha256 {
        report.add(Finding::LeafAltered { index, why: "its stored claims are not the ones it committed to".into() });
    }
    let Ok(claims) = Claims::decode(&record.claims, leaf.claims_format) else {
        report.add(Finding::LeafAltered { index, why: "its claims do not parse".into() });
        return Ok(0);
    };
    let rows = store.audit_rows(&leaf.project, &claims.keys())?;
    let horizon =
        opts.retention.cutoff(&leaf.project, opts.now_unix_nano).map(|c| c.saturating_add(RETENTION_SLACK_NS));
    let mut found = 0;
    // Per claimed span: its row's digest when the row passed its own check (V2 groups are checked
    // whole once each of their rows did).
    let mut passed: Vec<Option<SpanDigest>> = vec![None; claims.spans.len()];
    for (n, (claim, row)) in claims.spans.iter().zip(rows).enumerate() {
        let altered = |what: String| Finding::SpanAltered {
            index,
            project: leaf.project.clone(),
            batch_id: leaf.batch_id,
            trace_id: claim.trace_id,
            span_id: claim.span_id,
            what,
        };
        let deleted = || Finding::SpanDeleted {
            index,
            project: leaf.project.clone(),
            batch_id: leaf.batch_id,
            trace_id: claim.trace_id,
            span_id: claim.span_id,
        };
        match row {
            RowLookup::Found(row) => {
                report.spans_checked += 1;
                if row.leaf_index == Some(index) {
                    found += 1;
                } else {
                    report.add(altered(format!("the row names leaf {:?}", row.leaf_index)));
                }
                let resource = match resources.get(&row.resource_id) {
                    Some(r) => r.clone(),
                    None => {
                        let r = resource_row(store, row.resource_id)?;
                        if r.is_none() {
                            report.add(Finding::ResourceAltered { id: row.resource_id });
                        }
                        resources.insert(row.resource_id, r.clone());
                        r
                    }
                };
                let Some((resource_sha256, service)) = resource else {
                    report.add(altered("its resource row is missing or altered".into()));
                    continue;
                };
                let digest = span_digest(&claim.trace_id, &claim.span_id, &resource_sha256, &row.body);
                if !claim.check.passes(&digest) {
                    report.add(altered("its content (body or resource) differs from what was stored".into()));
                } else if let Some(what) = derived_mismatch(&row, service.as_deref()) {
                    report.add(altered(what));
                } else if row.leaf_index == Some(index) {
                    passed[n] = Some(digest);
                }
            }
            RowLookup::TraceGone if horizon.is_some_and(|h| claim.start_unix_nano < h) => report.spans_expired += 1,
            RowLookup::TraceGone | RowLookup::SpanGone => report.add(deleted()),
        }
    }
    for g in altered_groups(&claims, &passed) {
        let first = &claims.spans[g.first];
        report.add(Finding::SpanAltered {
            index,
            project: leaf.project.clone(),
            batch_id: leaf.batch_id,
            trace_id: first.trace_id,
            span_id: first.span_id,
            what: format!(
                "one of the {} spans of this trace in the batch differs from what was stored (its tag \
                 matched; the trace group's digest does not)",
                g.len
            ),
        });
    }
    Ok(found)
}

/// The V2 trace groups whose every row passed its tag (`passed`: each claimed span's row digest
/// when it did) and whose group digest still differs: a row altered so that its tag stayed (see
/// `leaf`'s module docs), which one cannot be told. Groups with a row already reported are left
/// to that finding.
fn altered_groups<'c>(claims: &'c StoredClaims, passed: &[Option<SpanDigest>]) -> Vec<&'c GroupCheck> {
    claims
        .groups
        .iter()
        .filter(|g| {
            let (Some(ids), Some(digests)) =
                (claims.spans.get(g.first..g.first + g.len), passed.get(g.first..g.first + g.len))
            else {
                // Decoding builds groups over the spans it decodes: cannot happen.
                return false;
            };
            let digests: Option<Vec<&SpanDigest>> = digests.iter().map(Option::as_ref).collect();
            digests.is_some_and(|d| group_digest(ids.iter().map(|c| &c.span_id).zip(d)) != g.digest)
        })
        .collect()
}

/// A resource row's stored hash and service when its body still hashes to it; `None` otherwise.
fn resource_row(store: &dyn Store, id: i64) -> StoreResult<Option<([u8; 32], Option<String>)>> {
    let Some((hash, body)) = store.audit_resource(id)? else { return Ok(None) };
    if <[u8; 32]>::from(Sha256::digest(&body)) != hash {
        return Ok(None);
    }
    let service = decode_resource_body(&body).ok().and_then(|(r, _)| r.service_name().map(str::to_owned));
    Ok(Some((hash, service)))
}

/// The first derived column that disagrees with the body (or the resource), if any.
fn derived_mismatch(row: &RowRecord, service: Option<&str>) -> Option<String> {
    let Ok(span) = decode_span_body(&row.body) else { return Some("its body does not decode".into()) };
    let checks: [(&str, bool); 8] = [
        ("name", row.name == span.name),
        ("parent_span_id", row.parent_span_id.as_deref() == span.parent_span_id.as_ref().map(|p| &p.0[..])),
        ("kind", row.kind == span.kind.as_i32()),
        ("start_ns", row.start_ns == ns(span.start_time_unix_nano)),
        ("end_ns", row.end_ns == ns(span.end_time_unix_nano)),
        ("duration_ns", row.duration_ns == ns(span.duration_nanos())),
        ("status", row.status == span.status.code as i32),
        ("service", row.service.as_deref() == service),
    ];
    checks.iter().find(|(_, ok)| !ok).map(|(col, _)| format!("column {col} differs from the stored span"))
}

/// Step 3: every row, against the claims of the leaf it names.
fn find_unclaimed(store: &dyn Store, size: u64, unlogged_ok: bool, report: &mut Report) -> StoreResult<()> {
    // The claimed (leaf, trace, span) keys, as 64-bit fingerprints: 8 bytes a span.
    let mut claimed: HashSet<u64> = HashSet::new();
    let fp = |leaf: u64, t: &[u8; 16], s: &[u8; 8]| {
        let d = Sha256::new().chain_update(leaf.to_be_bytes()).chain_update(t).chain_update(s).finalize();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    };
    let mut next = 0;
    while next < size {
        let page = store.audit_leaves(next, LEAVES_PER_PAGE)?;
        let Some(last) = page.last() else { break };
        next = last.index + 1;
        for r in &page {
            let format = Leaf::decode(&r.leaf).map(|l| l.claims_format);
            if let Ok(c) = format.and_then(|f| Claims::decode(&r.claims, f)) {
                claimed.extend(c.spans.iter().map(|c| fp(r.index, &c.trace_id, &c.span_id)));
            }
        }
    }
    let inserted = |r: super::RowKey| Finding::SpanInserted {
        project: r.project,
        trace_id: r.trace_id,
        span_id: r.span_id,
        names_leaf: r.leaf_index,
    };
    // Rows naming leaves past the verified log: appended since verification began (a collector
    // serving meanwhile) if their leaf exists once the scan is over — a row and its leaf are
    // committed together — forged otherwise.
    let mut newer = Vec::new();
    let mut after = None;
    loop {
        let rows = store.audit_scan_rows(after, ROWS_PER_PAGE)?;
        let Some(last) = rows.last() else { break };
        after = Some((last.trace_seq, last.span_id));
        for r in rows {
            match r.leaf_index {
                Some(l) if l >= size => newer.push(r),
                Some(l) if claimed.contains(&fp(l, &r.trace_id, &r.span_id)) => {}
                None if unlogged_ok => {}
                _ => report.add(inserted(r)),
            }
        }
    }
    let size_now = store.audit_size()?;
    for r in newer {
        if r.leaf_index.is_some_and(|l| l >= size_now) {
            report.add(inserted(r));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracex_core::audit::merkle;

    use super::*;

    /// A row altered so that its 4-byte tag stayed (as 2^32 tries would make it) is caught by its
    /// trace group's digest.
    #[test]
    fn a_row_that_keeps_its_tag_fails_its_group() {
        use super::super::leaf::Claim;
        let claim = |t: u8, s: u8| Claim { trace_id: [t; 16], span_id: [s; 8], start_unix_nano: 1, digest: [s; 16] };
        let mut claims = Claims(vec![claim(1, 1), claim(1, 2), claim(2, 3)]);
        let stored = Claims::decode(&claims.encode(), super::super::leaf::ClaimsFormat::V2).unwrap();
        let rows: Vec<Option<SpanDigest>> = claims.0.iter().map(|c| Some(c.digest)).collect();
        assert!(altered_groups(&stored, &rows).is_empty(), "the rows as committed");
        let mut kept_tag = rows.clone();
        kept_tag[1].as_mut().unwrap()[15] ^= 1;
        assert!(stored.spans[1].check.passes(kept_tag[1].as_ref().unwrap()), "the tag still passes");
        assert_eq!(altered_groups(&stored, &kept_tag), [&stored.groups[0]]);
        // A group with a row already reported (it failed its own check) is left to that finding.
        let mut reported = kept_tag;
        reported[0] = None;
        assert!(altered_groups(&stored, &reported).is_empty());
    }

    #[test]
    fn the_compact_range_gives_the_reference_root_at_every_size() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let mut c = Compact::default();
        assert_eq!(c.root(), None);
        for (i, l) in leaves.iter().enumerate() {
            c.push(*l);
            assert_eq!(c.root(), Some(merkle::root(&leaves[..=i])), "size {}", i + 1);
        }
    }
}
