//! Reads the next chunk of the audit log after the export cursor and turns its leaves' span rows
//! into OTLP requests (protobuf, gzip-compressed), each within the request limits.

use std::io::Write as _;
use std::time::Duration;

use tracex_core::{InstrumentationScope, Resource, ResourceSpans, ScopeSpans, SpanData, TraceRequest};

use super::ExportConfig;
use crate::audit::spans;
use crate::store::{Store, StoreError, StoreResult};

/// Most leaves read in one chunk (a leaf can hold no span the export wants).
const MAX_LEAVES_PER_CHUNK: usize = 512;

/// The next stretch of the log, ready to send.
#[derive(Debug)]
pub struct Chunk {
    /// The leaf after the last one read: where the cursor goes once every request is delivered.
    pub end: u64,
    /// The requests, in log order.
    pub requests: Vec<Request>,
    /// Spans of leaves older than `max_lag_seconds`, skipped.
    pub dropped_lag: u64,
    /// Spans claimed by a leaf and no longer stored (retention got there first).
    pub missing: u64,
    /// How long ago the collector received the first leaf not yet delivered (zero when there is
    /// none).
    pub lag: Duration,
}

/// One OTLP request.
#[derive(Debug)]
pub struct Request {
    /// Its spans, grouped by resource and scope (kept to halve the request on a 413).
    pub spans_by_resource: Vec<(Resource, InstrumentationScope, Vec<SpanData>)>,
    /// Spans in it.
    pub spans: u64,
    /// When the collector received the oldest of its batches (unix ns).
    pub oldest_received_ns: u64,
    /// `ExportTraceServiceRequest`, gzip-compressed.
    pub body: Vec<u8>,
}

impl Request {
    fn new(
        spans_by_resource: Vec<(Resource, InstrumentationScope, Vec<SpanData>)>,
        oldest_received_ns: u64,
    ) -> StoreResult<Self> {
        let req = TraceRequest {
            resource_spans: spans_by_resource
                .iter()
                .map(|(resource, scope, spans)| ResourceSpans {
                    resource: resource.clone(),
                    scope_spans: vec![ScopeSpans { scope: scope.clone(), spans: spans.clone(), ..Default::default() }],
                    ..Default::default()
                })
                .collect(),
        };
        let mut protobuf = Vec::with_capacity(tracex_core::encode::encoded_len_request(&req));
        tracex_core::encode::encode_request(&req, &mut protobuf);
        // Level 1: a fast level compresses span protobuf to ~15–20 %; the time goes to sending.
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(protobuf.len() / 4), flate2::Compression::fast());
        gz.write_all(&protobuf).map_err(|e| StoreError::Database(format!("compressing: {e}")))?;
        let body = gz.finish().map_err(|e| StoreError::Database(format!("compressing: {e}")))?;
        let spans = spans_by_resource.iter().map(|(_, _, s)| s.len() as u64).sum();
        Ok(Self { spans_by_resource, spans, oldest_received_ns, body })
    }

    /// Two requests of half the spans each (a receiver answered 413).
    pub fn halve(self) -> StoreResult<(Self, Self)> {
        let half = usize::try_from(self.spans / 2).unwrap_or(usize::MAX);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut taken = 0;
        for (resource, scope, spans) in self.spans_by_resource {
            let room = half.saturating_sub(taken).min(spans.len());
            taken += room;
            let mut spans = spans;
            let rest = spans.split_off(room);
            if !spans.is_empty() {
                a.push((resource.clone(), scope.clone(), spans));
            }
            if !rest.is_empty() {
                b.push((resource, scope, rest));
            }
        }
        Ok((Self::new(a, self.oldest_received_ns)?, Self::new(b, self.oldest_received_ns)?))
    }
}

/// Reads the leaves from `from` on (up to about `max_spans_per_request` spans' worth, at least one
/// leaf) and builds their requests. Leaves of projects not exported, and leaves received more
/// than `max_lag_seconds` before `now_ns`, are passed over.
pub fn read(store: &dyn Store, from: u64, config: &ExportConfig, now_ns: u64) -> StoreResult<Chunk> {
    let mut chunk = Chunk { end: from, requests: Vec::new(), dropped_lag: 0, missing: 0, lag: Duration::ZERO };
    let leaves = store.audit_leaves(from, MAX_LEAVES_PER_CHUNK)?;
    let max_lag_ns = config.max_lag_seconds.saturating_mul(1_000_000_000);
    let mut builder = Builder::new(config);
    let mut resources = spans::ResourceCache::new();
    let mut claimed = 0usize;
    for record in leaves {
        if record.index != chunk.end || claimed >= config.max_spans_per_request {
            // (Leaves are gap-free: a hole is a leaf being written right now; read it next time.)
            break;
        }
        let leaf = spans::leaf_of(&record)?;
        chunk.end = record.index + 1;
        if chunk.lag.is_zero() {
            chunk.lag = Duration::from_nanos(now_ns.saturating_sub(leaf.received_at_unix_nano));
        }
        if leaf.spans == 0 || !(config.projects.is_empty() || config.projects.contains(&leaf.project)) {
            continue;
        }
        if now_ns.saturating_sub(leaf.received_at_unix_nano) > max_lag_ns {
            chunk.dropped_lag += u64::from(leaf.spans);
            continue;
        }
        claimed += leaf.spans as usize;
        let read = spans::read(store, &record, &mut resources)?;
        chunk.missing += read.missing;
        for group in read.groups {
            for (span, bytes) in group.spans {
                builder.push(
                    group.resource_id,
                    (&group.resource, &group.scope),
                    span,
                    bytes,
                    read.leaf.received_at_unix_nano,
                    &mut chunk,
                )?;
            }
        }
    }
    builder.flush(&mut chunk)?;
    Ok(chunk)
}

/// Groups spans by resource into requests within the limits.
struct Builder {
    max_spans: usize,
    max_bytes: usize,
    groups: Vec<(i64, Resource, InstrumentationScope, Vec<SpanData>)>,
    spans: usize,
    bytes: usize,
    oldest_received_ns: u64,
}

impl Builder {
    fn new(config: &ExportConfig) -> Self {
        Self {
            max_spans: config.max_spans_per_request,
            max_bytes: config.max_request_bytes,
            groups: Vec::new(),
            spans: 0,
            bytes: 0,
            oldest_received_ns: u64::MAX,
        }
    }

    fn push(
        &mut self,
        resource_id: i64,
        (resource, scope): (&Resource, &InstrumentationScope),
        span: SpanData,
        bytes: usize,
        received_ns: u64,
        chunk: &mut Chunk,
    ) -> StoreResult<()> {
        if self.spans > 0 && (self.spans >= self.max_spans || self.bytes + bytes > self.max_bytes) {
            self.flush(chunk)?;
        }
        self.spans += 1;
        self.bytes += bytes;
        self.oldest_received_ns = self.oldest_received_ns.min(received_ns);
        match self.groups.iter_mut().find(|g| g.0 == resource_id) {
            Some(g) => g.3.push(span),
            None => self.groups.push((resource_id, resource.clone(), scope.clone(), vec![span])),
        }
        Ok(())
    }

    fn flush(&mut self, chunk: &mut Chunk) -> StoreResult<()> {
        if self.spans == 0 {
            return Ok(());
        }
        let groups = std::mem::take(&mut self.groups).into_iter().map(|(_, r, s, spans)| (r, s, spans)).collect();
        chunk.requests.push(Request::new(groups, self.oldest_received_ns)?);
        (self.spans, self.bytes, self.oldest_received_ns) = (0, 0, u64::MAX);
        Ok(())
    }
}
