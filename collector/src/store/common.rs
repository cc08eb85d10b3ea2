//! What the SQLite and PostgreSQL stores share: the attribute index's hashing and value rendering,
//! the exact attribute check, the listing cursor, the listing knobs, and the encoding of span and
//! resource bodies. Both stores write the same bytes and hashes, so their on-disk meaning is the
//! same (see the module docs of [`super::sqlite`] for the design).

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::HashSetExt as _;
use sha2::{Digest, Sha256};
use tracex_core::decode::decode_request;
use tracex_core::encode::encode_spans;
use tracex_core::{InstrumentationScope, Resource, SpanData, Value};

use super::{ApiKeyRecord, AttributeFilter, KeyScope, StoreError, StoreResult, TraceOrder};
use crate::audit::leaf::{Claim, Claims, DIGEST_LEN, rows_sha256, span_digests};

/// An indexed filter matching fewer traces than this drives the listing query (see the module docs of [`super::sqlite`]).
pub const DRIVER_THRESHOLD: usize = 10_000;

/// Most candidate traces one page examines when attribute filters need decoding (see the module docs of [`super::sqlite`]).
pub const SCAN_BUDGET: usize = 20_000;

/// Largest page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Cursor format version of a listing newest first (the key is the trace's start).
const CURSOR_VERSION: u8 = 1;
/// Cursor format version of a listing longest first (the key is the trace's duration).
const CURSOR_VERSION_LONGEST: u8 = 2;

/// Span attribute keys (besides every `x402.*` key) that `trace_attrs` indexes: well-known keys
/// with few distinct values, worth a filter.
const INDEXED_KEYS: &[&str] = &[
    "http.response.status_code",
    "http.request.method",
    "http.route",
    "rpc.system",
    "rpc.method",
    "rpc.grpc.status_code",
    "error.type",
    "peer.service",
    "server.address",
    "db.system",
    "messaging.system",
];

/// True when span attribute `key` is indexed in `trace_attrs` (see the module docs).
pub fn is_indexed_key(key: &str) -> bool {
    key.starts_with("x402.") || INDEXED_KEYS.contains(&key)
}

/// Locks a mutex, ignoring poisoning: a panic mid-transaction already rolled it back (the
/// `Transaction` drop), and a connection has no other invariant to protect.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `u64` nanoseconds as the `i64` stored in index columns (saturating).
pub(crate) fn ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored (non-negative) `i64` back to `u64`.
pub(crate) fn unns(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

// === attribute hashing ===

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Hash of an attribute `key` with its value rendered as `text` (`0xFF` never occurs in UTF-8, so
/// the separator is unambiguous). Stable across builds: it is stored on disk.
#[allow(clippy::cast_possible_wrap, reason = "the hash's 64 bits, stored in a signed BIGINT")]
pub(crate) fn attr_hash(key: &[u8], text: &str) -> i64 {
    let h = fnv(fnv(fnv(FNV_OFFSET, key), &[0xff]), text.as_bytes());
    h as i64
}

/// Pseudo-key for the span's `service.name` (starts with `0xFE`: no UTF-8 key collides).
pub(crate) const SERVICE_KEY: &[u8] = b"\xfeservice";

/// The `trace_attrs` hashes one span contributes (its service, then each indexed scalar
/// attribute), passed to `add` (duplicates included); `text` is scratch space. Shared by the
/// commit (which inserts them) and retention (which deletes them).
pub(crate) fn span_attr_hashes(service: Option<&str>, span: &SpanData, text: &mut String, mut add: impl FnMut(i64)) {
    if let Some(service) = service {
        add(attr_hash(SERVICE_KEY, service));
    }
    // (span names are not indexed: see the SQLite store's module docs)
    for kv in &span.attributes {
        if is_indexed_key(&kv.key) && render_value(&kv.value, text) {
            add(attr_hash(kv.key.as_bytes(), text));
        }
    }
}

/// Renders a scalar value as filter text into `out` (cleared first); false for bytes, arrays and
/// maps, which no filter matches.
pub(crate) fn render_value(v: &Value, out: &mut String) -> bool {
    out.clear();
    match v {
        Value::String(s) => out.push_str(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(d) => {
            let _ = write!(out, "{d}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Bytes(_) | Value::Array(_) | Value::Map(_) => return false,
    }
    true
}

/// True when `span` satisfies every attribute filter (see the module docs for the rules).
pub(crate) fn span_matches_attrs(span: &SpanData, filters: &[AttributeFilter], buf: &mut String) -> bool {
    filters.iter().all(|f| match span.attribute(&f.key) {
        Some(v) => render_value(v, buf) && *buf == f.value,
        None => false,
    })
}

// === cursor ===

pub(crate) fn encode_cursor(order: TraceOrder, key: i64, seq: i64) -> String {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(cursor_version(order));
    bytes.extend_from_slice(&key.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    hex::encode(bytes)
}

fn cursor_version(order: TraceOrder) -> u8 {
    match order {
        TraceOrder::Newest => CURSOR_VERSION,
        TraceOrder::Longest => CURSOR_VERSION_LONGEST,
    }
}

/// `(sort key, trace sequence number)` of the last trace of the previous page of a listing in
/// `order`: a cursor of another order is refused, not misread.
pub(crate) fn decode_cursor(s: &str, order: TraceOrder) -> StoreResult<(i64, i64)> {
    let bad = || StoreError::InvalidQuery("malformed cursor".into());
    let bytes = hex::decode(s).map_err(|_| bad())?;
    if bytes.len() != 17 || !matches!(bytes[0], CURSOR_VERSION | CURSOR_VERSION_LONGEST) {
        return Err(bad());
    }
    if bytes[0] != cursor_version(order) {
        return Err(StoreError::InvalidQuery("the cursor belongs to a listing in another order".into()));
    }
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[1..9]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[9..17]);
    Ok((i64::from_be_bytes(key), i64::from_be_bytes(seq)))
}

/// A stored 32-byte hash (audit leaves, nodes, checkpoint roots, resources).
pub(crate) fn hash32(v: &[u8]) -> StoreResult<[u8; 32]> {
    v.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

/// Decodes a span body (a request holding exactly one span).
pub(crate) fn decode_span_body(bytes: &[u8]) -> StoreResult<SpanData> {
    let req = decode_request(bytes).map_err(|e| StoreError::Corrupt(format!("span body: {e}")))?;
    req.resource_spans
        .into_iter()
        .next()
        .and_then(|rs| rs.scope_spans.into_iter().next())
        .and_then(|ss| ss.spans.into_iter().next())
        .ok_or_else(|| StoreError::Corrupt("span body holds no span".into()))
}

/// Decodes a resource body (a request holding one resource and one scope, no spans).
pub(crate) fn decode_resource_body(bytes: &[u8]) -> StoreResult<(Resource, InstrumentationScope)> {
    let req = decode_request(bytes).map_err(|e| StoreError::Corrupt(format!("resource body: {e}")))?;
    let rs = req
        .resource_spans
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("resource body holds no resource".into()))?;
    let scope = rs.scope_spans.into_iter().next().map(|ss| ss.scope).unwrap_or_default();
    Ok((rs.resource, scope))
}

/// Encodes `resource` and `scope` as a resource body (a request holding them and no spans) into
/// `out` (cleared first) and returns its SHA-256, the key resources are deduplicated by.
pub(crate) fn encode_resource_body(resource: &Resource, scope: &InstrumentationScope, out: &mut Vec<u8>) -> [u8; 32] {
    out.clear();
    encode_spans(resource, scope, &[], out);
    Sha256::digest(&*out).into()
}

/// Encodes `span` as a span body (a request holding just that span, under an empty resource and
/// scope) into `out` (cleared first).
pub(crate) fn encode_span_body(span: &SpanData, out: &mut Vec<u8>) {
    out.clear();
    encode_spans(&Resource::default(), &InstrumentationScope::default(), std::slice::from_ref(span), out);
}

/// Bytes reserved a span for the bodies [`PreparedSpans::of`] encodes (a body of the ingest
/// bench's spans, seven attributes, is ≈ 340; more grows the buffer), at most
/// [`BODY_RESERVE_MAX`] a batch: a batch of many tiny spans reserves no more than that up front.
const BODY_BYTES_GUESS: usize = 384;
/// Most bytes [`PreparedSpans::of`] reserves for a batch's bodies before it knows their size.
const BODY_RESERVE_MAX: usize = 4 << 20;

/// A batch's span bodies, attribute index hashes and audit digests, computed where the batch is
/// decoded (a blocking thread per request) rather than on the single writer thread, which is
/// ingest's bottleneck: encoding and hashing every span there cost the writer ≈ 8 % of its
/// throughput, the attribute hashes (rendering each indexed value as text) 2,300 instructions a
/// span more (callgrind, `--bench store`). In request order (resource, then scope, then span).
#[derive(Clone, Debug, Default)]
pub struct PreparedSpans {
    bodies: Vec<u8>,
    ends: Vec<usize>,
    digests: Vec<crate::audit::leaf::SpanDigest>,
    /// [`span_attr_hashes`] of every span, one after another; `attr_ends[k]` ends span `k`'s.
    attr_hashes: Vec<i64>,
    attr_ends: Vec<u32>,
    /// With digests: the batch's claims as the leaf holds them when its commit inserts every one
    /// of its spans, as nearly every commit does (see [`PreparedSpans::claims`]).
    claims: Option<PreparedClaims>,
}

/// A batch's encoded claims ([`Claims::encode`]) and their [`rows_sha256`], computed before the
/// writer: sorting, grouping and hashing them there cost the writer 3,100 instructions a span in
/// traces of 8 and 7,000 in one-span traces, a group digest each (callgrind, `--bench store`,
/// whose SHA-256 is the software one: fewer cycles on hardware with SHA extensions).
#[derive(Clone, Debug)]
pub(crate) struct PreparedClaims {
    /// [`Claims::encode`]'s output.
    pub(crate) encoded: Vec<u8>,
    /// Its [`rows_sha256`].
    pub(crate) rows_sha256: [u8; 32],
}

impl PreparedSpans {
    /// Encodes every span of `request` (see `encode_span_body`) and, with `digests`, its audit
    /// digest ([`crate::audit::leaf::span_digest`]).
    pub fn of(request: &tracex_core::TraceRequest, digests: bool) -> Self {
        // Sized once: grown by doubling, the per-span vectors and the bodies were copied about
        // once more each, and their memory faulted in again (a batch is 512 spans or more).
        let spans = request.span_count();
        let per_span_if = |on: bool| if on { spans } else { 0 };
        let mut out = Self {
            bodies: Vec::with_capacity((spans * BODY_BYTES_GUESS).min(BODY_RESERVE_MAX)),
            ends: Vec::with_capacity(spans),
            digests: Vec::with_capacity(per_span_if(digests)),
            attr_hashes: Vec::with_capacity(spans * 4),
            attr_ends: Vec::with_capacity(spans),
            claims: None,
        };
        let (mut body, mut resource) = (Vec::with_capacity(512), Vec::with_capacity(256));
        let mut text = String::with_capacity(128);
        let mut claims = Claims(Vec::with_capacity(per_span_if(digests)));
        // With digests: each scope's resource hash, and which one each span has (the digests are
        // computed after the loop, several at once, from the encoded bodies).
        let (mut resource_hashes, mut span_resource) = (Vec::new(), Vec::with_capacity(per_span_if(digests)));
        for rs in &request.resource_spans {
            let service = rs.resource.service_name();
            for ss in &rs.scope_spans {
                if ss.spans.is_empty() {
                    continue;
                }
                if digests {
                    resource_hashes.push(encode_resource_body(&rs.resource, &ss.scope, &mut resource));
                }
                for span in &ss.spans {
                    encode_span_body(span, &mut body);
                    if digests {
                        span_resource.push(resource_hashes.len() - 1);
                        claims.0.push(Claim {
                            trace_id: span.trace_id.0,
                            span_id: span.span_id.0,
                            start_unix_nano: span.start_time_unix_nano,
                            digest: [0; DIGEST_LEN],
                        });
                    }
                    out.bodies.extend_from_slice(&body);
                    out.ends.push(out.bodies.len());
                    span_attr_hashes(service, span, &mut text, |h| out.attr_hashes.push(h));
                    out.attr_ends.push(u32::try_from(out.attr_hashes.len()).unwrap_or(u32::MAX));
                }
            }
        }
        if digests {
            let bodies = out.ends.iter().scan(0, |start, &end| {
                let body = &out.bodies[*start..end];
                *start = end;
                Some(body)
            });
            let rows = claims
                .0
                .iter()
                .zip(&span_resource)
                .zip(bodies)
                .map(|((c, &r), body)| (&c.trace_id, &c.span_id, &resource_hashes[r], body));
            span_digests(rows, |d| out.digests.push(d));
            for (c, d) in claims.0.iter_mut().zip(&out.digests) {
                c.digest = *d;
            }
            let encoded = claims.encode();
            out.claims = Some(PreparedClaims { rows_sha256: rows_sha256(&encoded), encoded });
        }
        out
    }

    /// Bytes held (for the ingest memory budget).
    pub fn bytes(&self) -> usize {
        self.bodies.capacity()
            + self.ends.capacity() * 8
            + self.digests.capacity() * 16
            + self.attr_hashes.capacity() * 8
            + self.attr_ends.capacity() * 4
            + self.claims.as_ref().map_or(0, |c| c.encoded.capacity())
    }

    /// The prepared claims, if the commit inserted `inserted` spans of this batch and that is every
    /// span it has: then they are exactly the spans the claims were computed from (a span is
    /// inserted at most once), and otherwise the writer claims what it inserted itself.
    pub(crate) fn claims(&self, inserted: usize) -> Option<&PreparedClaims> {
        self.claims.as_ref().filter(|_| inserted == self.ends.len())
    }

    /// The attribute index hashes of the `k`-th span ([`span_attr_hashes`]).
    pub(crate) fn attr_hashes(&self, k: usize) -> Option<&[i64]> {
        let end = *self.attr_ends.get(k)? as usize;
        let start = if k == 0 { 0 } else { self.attr_ends[k - 1] as usize };
        self.attr_hashes.get(start..end)
    }

    /// The body of the `k`-th span.
    pub(crate) fn body(&self, k: usize) -> Option<&[u8]> {
        let end = *self.ends.get(k)?;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        self.bodies.get(start..end)
    }

    /// The digest of the `k`-th span, if computed.
    pub(crate) fn digest(&self, k: usize) -> Option<crate::audit::leaf::SpanDigest> {
        self.digests.get(k).copied()
    }
}

/// Listing knobs ([`DRIVER_THRESHOLD`], [`SCAN_BUDGET`]); tests shrink them to reach every path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    pub(crate) driver_threshold: usize,
    pub(crate) scan_budget: usize,
    /// Most spans stored per trace.
    pub(crate) max_spans_per_trace: u64,
    /// Whether commits append to the audit log (`audit_log`, default on).
    pub(crate) audit_log: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            driver_threshold: DRIVER_THRESHOLD,
            scan_budget: SCAN_BUDGET,
            max_spans_per_trace: MAX_SPANS_PER_TRACE,
            audit_log: true,
        }
    }
}

/// Most spans stored for one trace (default of `max_spans_per_trace`). A trace is read whole to
/// order its waterfall: 100,000 spans cost 1.46 GiB to serve before the detail route was paginated,
/// and even paginated the store loads them all. Spans past the cap are counted and not stored.
pub const MAX_SPANS_PER_TRACE: u64 = 50_000;

/// Applies the per-trace span cap to the spans a commit offers, in arrival order: the first copy
/// of each span (within the commit) counts towards its trace's cap on top of what the trace already
/// holds; later copies count nothing (the store ignores them anyway). A span repeated from an
/// earlier commit counts too: the cap bounds what is offered, and is never exceeded by what is
/// stored. Shared by both stores so their answers are the same.
///
/// Traces are the commit's own indexes (`0..traces`), so a span costs one hash of 16 bytes: the
/// writer hashed each span three times before (`(project, trace id, span id)`, `(project, trace
/// id)` and `(sequence, span id)`; SipHash, which a client choosing trace ids cannot flood), most
/// of the 1,900 instructions a span its hashing took in callgrind (`--bench store`).
pub(crate) struct TraceCap {
    max: u64,
    /// Spans each trace holds with those admitted so far (`None`: none offered yet).
    used: Vec<Option<u64>>,
    seen: foldhash::HashSet<(usize, [u8; 8])>,
}

/// What [`TraceCap::admit`] decided for one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The first copy in the commit, within the cap: to be written.
    First,
    /// A later copy of a span already admitted: nothing to write or count.
    Again,
    /// Over its trace's cap.
    OverCap,
}

impl TraceCap {
    /// A cap of `max` spans a trace over the commit's `traces` traces, for its `spans` spans (the
    /// set is sized for them once: grown from empty it rehashed every span about once more).
    pub(crate) fn new(max: u64, traces: usize, spans: usize) -> Self {
        Self { max, used: vec![None; traces], seen: foldhash::HashSet::with_capacity(spans) }
    }

    /// Decides span `span_id` of the commit's trace `trace`, which holds `stored` spans before
    /// this commit.
    pub(crate) fn admit(&mut self, trace: usize, span_id: [u8; 8], stored: u64) -> Admit {
        let used = self.used[trace].get_or_insert(stored);
        if *used >= self.max {
            // Not remembered: a later copy is over the cap as well.
            return if self.seen.contains(&(trace, span_id)) { Admit::Again } else { Admit::OverCap };
        }
        if !self.seen.insert((trace, span_id)) {
            return Admit::Again;
        }
        *used += 1;
        Admit::First
    }
}

/// What a batch whose id is already stored is: a retry when the stored envelope hash is the same
/// (or was never recorded: batches stored before hashes were), else a conflict.
pub(crate) fn same_envelope(stored: Option<&[u8]>, new: &[u8; 32]) -> super::CommitOutcome {
    match stored {
        Some(h) if h != new => super::CommitOutcome::Conflict,
        _ => super::CommitOutcome::Duplicate,
    }
}

/// The columns of `api_keys`, in the order both stores select them.
pub(crate) const API_KEY_COLUMNS: &str = "id, project, scope, secret_sha256, created_at_ns, revoked_at_ns";

/// An `api_keys` row as a record (both stores store the same columns the same way).
pub(crate) fn api_key_record(
    id: String,
    project: String,
    scope: &str,
    secret: &[u8],
    created_ns: i64,
    revoked_ns: Option<i64>,
) -> StoreResult<ApiKeyRecord> {
    let scope = match scope {
        "ingest" => KeyScope::Ingest,
        "read" => KeyScope::Read,
        other => return Err(StoreError::Corrupt(format!("api key {id}: unknown scope {other:?}"))),
    };
    let secret_sha256 = <[u8; 32]>::try_from(secret)
        .map_err(|_| StoreError::Corrupt(format!("api key {id}: secret hash of {} bytes", secret.len())))?;
    Ok(ApiKeyRecord {
        id,
        project,
        scope,
        secret_sha256,
        created_at_unix_nano: unns(created_ns),
        revoked_at_unix_nano: revoked_ns.map(unns),
    })
}

/// Realistic ingest data for the stores' timing tests.
#[cfg(test)]
pub(crate) mod bench_data {
    use tracex_core::{
        InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind, Status,
        StatusCode, TraceId, TraceRequest,
    };

    /// xorshift64* (deterministic test data).
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    const NAMES: [&str; 8] = [
        "POST /settle",
        "verify",
        "settle",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
        "eth_getTransactionReceipt",
        "db.insert payment",
        "publish settled",
    ];

    /// A sealed-batch-sized request: 512 spans, traces of 8 spans, 7 attributes each.
    pub(crate) fn realistic_request(rng: &mut Rng, service: &str, base_ns: u64) -> TraceRequest {
        let mut spans = Vec::with_capacity(512);
        for _ in 0..64 {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&rng.next().to_le_bytes());
            trace[8..].copy_from_slice(&rng.next().to_le_bytes());
            let trace = TraceId(trace);
            let payer = format!("0x{:016x}{:016x}{:08x}", rng.next(), rng.next(), rng.next() as u32);
            let amount = (rng.next() % 100_000_000).to_string();
            let network = ["base", "base-sepolia", "solana"][(rng.next() % 3) as usize];
            let attempt = (rng.next() % 3 + 1) as i64;
            let start = base_ns + rng.next() % 1_000_000_000;
            let root_id = SpanId(rng.next().to_le_bytes());
            for (j, name) in NAMES.iter().enumerate() {
                let span_id = if j == 0 { root_id } else { SpanId(rng.next().to_le_bytes()) };
                let s = start + j as u64 * 1_000_000;
                let status = if rng.next() % 50 == 0 { Status::error("rpc timeout") } else { Status::default() };
                spans.push(SpanData {
                    trace_id: trace,
                    span_id,
                    parent_span_id: if j == 0 { None } else { Some(root_id) },
                    flags: 0x301,
                    name: (*name).into(),
                    kind: if j == 0 {
                        SpanKind::Server
                    } else if j >= 3 {
                        SpanKind::Client
                    } else {
                        SpanKind::Internal
                    },
                    start_time_unix_nano: s,
                    end_time_unix_nano: s + 200_000 + rng.next() % 5_000_000,
                    attributes: vec![
                        KeyValue::new("x402.network", network),
                        KeyValue::new("x402.asset", "USDC"),
                        KeyValue::new("x402.amount", amount.clone()),
                        KeyValue::new("x402.payer", payer.clone()),
                        KeyValue::new("x402.attempt", attempt),
                        KeyValue::new("x402.scheme", "exact"),
                        KeyValue::new(
                            "http.response.status_code",
                            if status.code == StatusCode::Error { 502i64 } else { 200 },
                        ),
                    ],
                    status,
                    ..SpanData::default()
                });
            }
        }
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Resource::new(service.to_owned())
                    .with("service.version", "1.4.2")
                    .with("deployment.environment.name", "production")
                    .with("telemetry.sdk.name", "tracex")
                    .with("telemetry.sdk.language", "rust"),
                scope_spans: vec![ScopeSpans {
                    scope: InstrumentationScope {
                        name: "tracex".into(),
                        version: "0.1.0".into(),
                        ..Default::default()
                    },
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// Ingest throughput: `TRACEX_BENCH_ROUNDS` (default 10) commits of `TRACEX_BENCH_BATCHES`
    /// (default 200) batches of 512 spans into `store` (fresh, migrated), then [`report_scale`]
    /// with the database size `size_bytes` gives afterwards.
    pub(crate) fn ingest_throughput(store: &dyn super::super::Store, size_bytes: impl FnOnce() -> u64) {
        use super::super::{CommitOutcome, NewBatch};
        use crate::store::conformance::batch;
        use std::time::{Duration, Instant};
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let rounds = env("TRACEX_BENCH_ROUNDS", 10);
        let per_call = env("TRACEX_BENCH_BATCHES", 200);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let services = ["facilitator", "settler", "gateway"];
        let (mut total_spans, mut total_time) = (0usize, Duration::ZERO);
        let mut n = 0u32;
        for round in 0..rounds {
            let batches: Vec<NewBatch> = (0..per_call)
                .map(|i| {
                    n += 1;
                    let req = realistic_request(
                        &mut rng,
                        services[i % 3],
                        1_750_000_000_000_000_000 + u64::from(n) * 1_000_000,
                    );
                    batch("bench", n, req)
                })
                .collect();
            let spans: usize = batches.iter().map(|b| b.request.span_count()).sum();
            let t0 = Instant::now();
            let out = store.commit(&batches).unwrap();
            let dt = t0.elapsed();
            assert!(out.iter().all(|o| matches!(o, CommitOutcome::Stored { spans: 512, over_cap: 0, .. })));
            total_spans += spans;
            total_time += dt;
            println!(
                "round {round}: {spans} spans in {:.1} ms = {:.0} spans/s",
                dt.as_secs_f64() * 1e3,
                spans as f64 / dt.as_secs_f64()
            );
        }
        report_scale(store, total_spans, total_time, per_call, size_bytes());
    }

    /// Prints the totals of a timing run, then times a listing (twice: the first reads after a bulk
    /// load can do extra work, e.g. PostgreSQL setting hint bits), a lookup and an error listing on
    /// the full database, for scale.
    pub(crate) fn report_scale(
        store: &dyn super::super::Store,
        total_spans: usize,
        total_time: std::time::Duration,
        per_call: usize,
        size_bytes: u64,
    ) {
        use super::super::{AttributeFilter, TraceQuery};
        use std::time::Instant;
        println!(
            "TOTAL: {total_spans} spans in {:.2} s = {:.0} spans/s ({} batches per commit); database {:.1} MiB = {:.0} B/span",
            total_time.as_secs_f64(),
            total_spans as f64 / total_time.as_secs_f64(),
            per_call,
            size_bytes as f64 / 1_048_576.0,
            size_bytes as f64 / total_spans as f64
        );
        let listing = TraceQuery {
            project: "bench".into(),
            service: Some("settler".into()),
            attributes: vec![AttributeFilter { key: "x402.network".into(), value: "solana".into() }],
            limit: 50,
            ..Default::default()
        };
        let t0 = Instant::now();
        let page = store.list_traces(&listing).unwrap();
        println!("list (service + x402.network, 50): {:.2} ms", t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let again = store.list_traces(&listing).unwrap();
        assert_eq!(again, page);
        println!("list again: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let spans = store.get_trace("bench", page.traces[0].trace_id).unwrap();
        println!("get_trace ({} spans): {:.2} ms", spans.len(), t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let page = store
            .list_traces(&TraceQuery {
                project: "bench".into(),
                status: Some(StatusCode::Error),
                limit: 50,
                ..Default::default()
            })
            .unwrap();
        println!("list (status error, 50 -> {}): {:.2} ms", page.traces.len(), t0.elapsed().as_secs_f64() * 1e3);
    }
}
