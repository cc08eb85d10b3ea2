//! Span record buffers (`docs/record-buffer.md`): how the JavaScript packages hand finished spans to
//! the core in bulk. The JS glue queues spans as plain objects and writes many of them into one
//! buffer; [`decode`] turns that buffer back into [`SpanData`] in a single boundary crossing.
//! [`Encoder`] is the reference writer: the tests pin the JS encoders against it.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::encode::put_varint as varint;
use crate::error::{Error, Result};
use crate::model::{Event, KeyValue, Link, SpanData, SpanId, SpanKind, Status, StatusCode, Str, TraceId, Value};

/// The first four bytes of a record buffer.
pub const MAGIC: &[u8; 4] = b"TXR1";
/// Values nest at most this deep (arrays and maps inside values).
pub const MAX_DEPTH: usize = 8;
/// Slot numbers are below this.
pub const MAX_SLOTS: u64 = 65_536;

const TAG_STRING: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_DOUBLE: u8 = 4;
const TAG_BYTES: u8 = 5;
const TAG_ARRAY: u8 = 6;
const TAG_MAP: u8 = 7;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidRecords(msg.into())
}

/// A decoded record buffer.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Records {
    /// Spans the host sampled out since its previous buffer.
    pub sampled_out: u64,
    /// The finished spans.
    pub spans: Vec<SpanData>,
}

/// Decodes a whole record buffer into its spans. Any defect rejects the whole buffer.
pub fn decode(buf: &[u8]) -> Result<Vec<SpanData>> {
    decode_records(buf).map(|r| r.spans)
}

/// Decodes a whole record buffer, with its header counters. Any defect rejects the whole buffer.
pub fn decode_records(buf: &[u8]) -> Result<Records> {
    let (sampled_out, spans) = decode_into(buf, SpanData::default)?;
    Ok(Records { sampled_out, spans })
}

/// Decodes a whole record buffer into boxes from `new_box` (the tracer's pool of emptied spans, so
/// a decoded span is written once, into the box it is queued in, and reuses the attribute vector
/// the box kept); the spans sampled out and the boxes. Any defect rejects the whole buffer: the
/// boxes decoded so far are dropped.
#[allow(clippy::vec_box, reason = "boxes are what the span queue holds: each goes on without its 224 bytes copied")]
pub(crate) fn decode_boxed(
    buf: &[u8],
    mut new_box: impl FnMut() -> Box<SpanData>,
) -> Result<(u64, Vec<Box<SpanData>>)> {
    decode_into(buf, &mut new_box)
}

/// The buffer's header, then each record written into a span that `slot` gives (a plain span, or a
/// pooled box).
///
/// `tracex_wasm_speed` (set by scripts/build-wasm.sh): the WASM module is built for size (opt-level
/// "z", for its download budget), which leaves the decoder — run on the JS thread there, on every
/// span — a chain of calls. `optimize(speed)` on the decoder's loops lets them inline what they
/// call: the WASM hot path ≈ 10 % faster for ≈ 400 bytes gzipped (docs/benchmarks.md).
#[cfg_attr(tracex_wasm_speed, optimize(speed))]
fn decode_into<T: std::borrow::BorrowMut<SpanData>>(buf: &[u8], mut slot: impl FnMut() -> T) -> Result<(u64, Vec<T>)> {
    let mut r = Reader { buf, pos: 0, slots: Slots::default() };
    if r.take(4)? != MAGIC {
        return Err(invalid("bad magic: not a TXR1 record buffer"));
    }
    let anchor = r.u64()?;
    let sampled_out = r.varint()?;
    let count = r.varint()?;
    // Each record is at least 66 bytes, so a count beyond that is a lie; don't pre-allocate for it.
    let cap = usize::try_from(count).unwrap_or(usize::MAX).min(buf.len() / 66 + 1);
    let mut spans = Vec::with_capacity(cap);
    for _ in 0..count {
        let mut span = slot();
        r.span_into(anchor, span.borrow_mut())?;
        spans.push(span);
    }
    if r.pos != buf.len() {
        return Err(invalid(format!("{} trailing bytes after {count} records", buf.len() - r.pos)));
    }
    Ok((sampled_out, spans))
}

/// Process-wide table of slot strings (attribute keys, span and event names): each distinct one is
/// allocated once and then shared by every span that uses it, so a decoded span does not allocate
/// for its keys. Bounded: past [`MAX_INTERNED`] distinct strings, new ones stay owned.
const MAX_INTERNED: usize = 8192;

/// Process-wide table of repeated string *values*: the JS layer binds a value to a slot when it
/// repeats within one buffer (literals, configuration, enum-like strings such as a network name),
/// and each use of an owned slot string was a fresh allocation and copy — three a span in the Node
/// bench's shape, freed on the batcher's thread (`perf`: glibc's allocator and its arena lock were a
/// third of the decoding thread's samples). Bounded in count and length, like the Python binding's
/// table of values: high-cardinality values stop being added once it is full, and a long value is
/// never kept.
const MAX_INTERNED_VALUES: usize = 1024;
/// Longest value kept in the values' table.
const MAX_INTERNED_VALUE_LEN: usize = 64;

type InternTable = std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>>;

fn intern(s: Str) -> Str {
    static KEYS: InternTable = InternTable::new();
    intern_in(&KEYS, s, MAX_INTERNED, usize::MAX)
}

fn intern_value(s: Str) -> Str {
    static VALUES: InternTable = InternTable::new();
    intern_in(&VALUES, s, MAX_INTERNED_VALUES, MAX_INTERNED_VALUE_LEN)
}

/// `s` borrowed from `table` (added when the table holds fewer than `max` strings and `s` is at most
/// `max_len` bytes), or `s` itself.
fn intern_in(table: &InternTable, s: Str, max: usize, max_len: usize) -> Str {
    if s.len() > max_len {
        return s;
    }
    let Ok(mut t) = table.get_or_init(Default::default).lock() else { return s };
    if let Some(&known) = t.get(s.as_ref()) {
        return Cow::Borrowed(known);
    }
    if t.len() >= max {
        return s;
    }
    let leaked: &'static str = Box::leak(s.into_owned().into_boxed_str());
    t.insert(leaked);
    Cow::Borrowed(leaked)
}

/// `s` as a `String`; the empty one without a call into the allocator (see [`Reader::string`]).
#[inline(always)]
#[allow(clippy::inline_always, reason = "opt-level z inlines nothing that is not forced")]
fn owned(s: Str) -> String {
    match s {
        Cow::Borrowed("") => String::new(),
        s => s.into_owned(),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Strings bound to slots in this buffer.
    slots: Slots,
}

/// Slots below this are kept in a vector indexed by slot, the rest in a map. The JS layer numbers
/// keys and names densely from 0 and per-buffer value slots from 4096 up; a single vector indexed
/// by slot made every buffer with one repeated value allocate, fill and drop 4,097 entries — ≈ 80 µs
/// of a 5-span flush in the WASM package (Node `--cpu-prof`: `Vec::extend_with` and its drop).
const DENSE_SLOTS: usize = 4096;

/// Strings bound to slots (below [`MAX_SLOTS`]) in one buffer: keys and names in `dense`, indexed
/// by slot; the first 4,096 per-buffer value slots (the JS layer numbers them from [`DENSE_SLOTS`]
/// up) in `values`, indexed from there — a lookup in a `BTreeMap` was ≈ 3 % of the WASM hot path;
/// slots from 8192 on (a buffer with more than 4,096 distinct repeated values: rare) in `sparse`,
/// so a hostile slot number never sizes a vector.
#[derive(Default)]
struct Slots {
    dense: Vec<Option<Str>>,
    values: Vec<Option<Str>>,
    sparse: std::collections::BTreeMap<usize, Str>,
}

#[allow(clippy::inline_always, reason = "opt-level z inlines nothing that is not forced")]
impl Slots {
    #[inline(always)]
    fn get(&self, i: usize) -> Option<&Str> {
        match i.checked_sub(DENSE_SLOTS) {
            None => self.dense.get(i).and_then(Option::as_ref),
            Some(v) if v < DENSE_SLOTS => self.values.get(v).and_then(Option::as_ref),
            Some(_) => self.sparse.get(&i),
        }
    }

    /// Binds slot `i`; false when it was already bound.
    fn bind(&mut self, i: usize, s: Str) -> bool {
        let (vec, at) = match i.checked_sub(DENSE_SLOTS) {
            None => (&mut self.dense, i),
            Some(v) if v < DENSE_SLOTS => (&mut self.values, v),
            Some(_) => {
                return match self.sparse.entry(i) {
                    std::collections::btree_map::Entry::Occupied(_) => false,
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(s);
                        true
                    }
                };
            }
        };
        if vec.len() <= at {
            vec.resize(at + 1, None);
        }
        if vec[at].is_some() {
            return false;
        }
        vec[at] = Some(s);
        true
    }
}

// The readers of fixed-size fields and varints are `inline(always)`: the WASM package is built for
// size (opt-level "z", which inlines almost nothing), and as calls returning a `Result` through
// memory they were most of the WASM hot path — decoding a record buffer on the JS thread, ≈ 1 µs a
// span against ≈ 0.4 µs for the whole hot path of the native addon (Node `--cpu-prof`:
// `Reader::u8`, `varint`, `take`, `string` leading). The error paths stay out of line.
#[allow(clippy::inline_always, reason = "opt-level z inlines nothing that is not forced")]
impl<'a> Reader<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(self.past_the_end(n)),
        }
    }

    #[cold]
    #[inline(never)]
    fn past_the_end(&self, n: usize) -> Error {
        invalid(format!("record runs past the end of the buffer at byte {} (+{n})", self.pos))
    }

    /// `N` bytes as an array: a plain load (`copy_from_slice` stayed a call at opt-level "z").
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        match self.buf.get(self.pos..).and_then(<[u8]>::first_chunk::<N>) {
            Some(a) => {
                self.pos += N;
                Ok(*a)
            }
            None => Err(self.past_the_end(N)),
        }
    }

    #[inline(always)]
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    #[inline(always)]
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    #[inline(always)]
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A varint: one byte inline (counts, flags, lengths of short strings, references to the
    /// first 32 slots: most varints of a buffer), longer ones out of line.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64> {
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64> {
        // A plain loop: `(0..64).step_by(7)` stayed an out-of-line iterator in the size-optimised
        // WASM build.
        let mut v = 0u64;
        let mut shift = 0;
        while shift < 64 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
        Err(invalid("varint longer than 10 bytes"))
    }

    #[inline(always)]
    fn len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| invalid("length out of range"))
    }

    #[inline(always)]
    fn u32v(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?).map_err(|_| invalid("count out of range"))
    }

    fn utf8(&mut self, n: usize) -> Result<Str> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(|s| Cow::Owned(s.to_owned()))
            .map_err(|_| invalid(format!("invalid UTF-8 in a string at byte {}", self.pos - n)))
    }

    /// A string of a key or name: slot definitions are interned process-wide.
    fn name(&mut self) -> Result<Str> {
        self.string(true)
    }

    /// A string; `intern_it` for keys and names, which repeat across buffers. Other strings bound to a
    /// slot (values, trace states, messages: possibly high-cardinality) go to the smaller, bounded
    /// table of [`intern_value`].
    ///
    /// The common cases inline (an empty literal, a reference to an interned slot: seven of a typical
    /// span's nine strings), the rest out of line. The empty literal (trace state, status message)
    /// is answered here without [`utf8`](Self::utf8): `to_owned` of no bytes is still a chain of
    /// allocator calls at opt-level "z" (≈ 5 % of the WASM hot path).
    #[inline(always)]
    fn string(&mut self, intern_it: bool) -> Result<Str> {
        let h = self.varint()?;
        if h == 0 {
            return Ok(Cow::Borrowed(""));
        }
        if h % 4 == 3 && h >> 2 < MAX_SLOTS {
            #[allow(clippy::cast_possible_truncation)] // below MAX_SLOTS
            if let Some(Cow::Borrowed(s)) = self.slots.get((h >> 2) as usize) {
                return Ok(Cow::Borrowed(s));
            }
        }
        self.string_after(h, intern_it)
    }

    /// The rest of [`string`](Self::string), after its header `h`.
    #[inline(never)]
    fn string_after(&mut self, h: u64, intern_it: bool) -> Result<Str> {
        if h % 2 == 0 {
            let n = usize::try_from(h / 2).map_err(|_| invalid("length out of range"))?;
            return self.utf8(n);
        }
        let slot = h >> 2;
        if slot >= MAX_SLOTS {
            return Err(invalid(format!("string slot {slot} out of range")));
        }
        if h % 4 == 1 {
            let n = self.len()?;
            let s = self.utf8(n)?;
            let s = if intern_it { intern(s) } else { intern_value(s) };
            #[allow(clippy::cast_possible_truncation)] // below MAX_SLOTS
            let i = slot as usize;
            if !self.slots.bind(i, s.clone()) {
                return Err(invalid(format!("string slot {slot} bound twice")));
            }
            Ok(s)
        } else {
            #[allow(clippy::cast_possible_truncation)] // below MAX_SLOTS
            self.slots
                .get(slot as usize)
                .cloned()
                .ok_or_else(|| invalid(format!("string slot {slot} used before it was bound")))
        }
    }

    #[cfg_attr(tracex_wasm_speed, optimize(speed))]
    fn time(&mut self, anchor: u64) -> Result<u64> {
        let ms = self.f64()?;
        let rel = (ms * 1e6).round();
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let t = if !rel.is_finite() {
            None
        } else if rel >= 0.0 {
            anchor.checked_add(rel as u64)
        } else {
            anchor.checked_sub((-rel) as u64)
        };
        t.ok_or_else(|| invalid(format!("time {ms} ms is out of range")))
    }

    #[cfg_attr(tracex_wasm_speed, optimize(speed))]
    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("values nest deeper than {MAX_DEPTH} levels")));
        }
        Ok(match self.u8()? {
            TAG_STRING => Value::String(self.string(false)?),
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_INT => Value::Int(i64::from_le_bytes(self.array()?)),
            TAG_DOUBLE => Value::Double(self.f64()?),
            TAG_BYTES => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            TAG_ARRAY => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(self.buf.len() - self.pos));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            TAG_MAP => Value::Map(self.attributes(depth + 1)?),
            tag => return Err(invalid(format!("unknown value tag {tag}"))),
        })
    }

    fn attributes(&mut self, depth: usize) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        self.attributes_into(depth, &mut out)?;
        Ok(out)
    }

    /// Appends the attributes to `out` (empty, perhaps with capacity from a pooled span).
    #[cfg_attr(tracex_wasm_speed, optimize(speed))]
    fn attributes_into(&mut self, depth: usize, out: &mut Vec<KeyValue>) -> Result<()> {
        let n = self.len()?;
        // Each attribute takes at least two bytes.
        out.reserve(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let key = self.name()?;
            let value = self.value(depth)?;
            out.push(KeyValue { key, value });
        }
        Ok(())
    }

    /// One record into `out`, every field written; its attribute vector's memory is reused.
    #[cfg_attr(tracex_wasm_speed, optimize(speed))]
    fn span_into(&mut self, anchor: u64, out: &mut SpanData) -> Result<()> {
        let trace_id = TraceId(self.array()?);
        let span_id = SpanId(self.array()?);
        let parent = SpanId(self.array()?);
        let flags = self.u32v()?;
        let kind = SpanKind::from_i32(i32::from(self.u8()?));
        let status_code = match self.u8()? {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            c => return Err(invalid(format!("unknown status code {c}"))),
        };
        let start_time_unix_nano = self.time(anchor)?;
        let end_time_unix_nano = self.time(anchor)?;
        let name = self.name()?;
        let trace_state = owned(self.string(false)?);
        let message = self.string(false)?;
        let mut attributes = std::mem::take(&mut out.attributes);
        attributes.clear();
        self.attributes_into(0, &mut attributes)?;
        let dropped_attributes_count = self.u32v()?;
        let n_events = self.len()?;
        let mut events = if n_events == 0 { Vec::new() } else { Vec::with_capacity(n_events.min(64)) };
        for _ in 0..n_events {
            let name = self.name()?;
            let time_unix_nano = self.time(anchor)?;
            let attributes = self.attributes(0)?;
            let dropped_attributes_count = self.u32v()?;
            events.push(Event { time_unix_nano, name, attributes, dropped_attributes_count });
        }
        let dropped_events_count = self.u32v()?;
        let n_links = self.len()?;
        let mut links = if n_links == 0 { Vec::new() } else { Vec::with_capacity(n_links.min(64)) };
        for _ in 0..n_links {
            let trace_id = TraceId(self.array()?);
            let span_id = SpanId(self.array()?);
            let flags = self.u32v()?;
            let trace_state = owned(self.string(false)?);
            let attributes = self.attributes(0)?;
            let dropped_attributes_count = self.u32v()?;
            links.push(Link { trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags });
        }
        let dropped_links_count = self.u32v()?;
        let old = std::mem::replace(
            out,
            SpanData {
                trace_id,
                span_id,
                trace_state,
                parent_span_id: parent.is_valid().then_some(parent),
                flags,
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status: Status { code: status_code, message },
            },
        );
        // A pooled box arrives emptied (`SpanBuffer::recycle`); its drop glue would free nothing, and
        // at opt-level "z" it is a chain of calls per field (≈ 6 % of the WASM hot path).
        if owns_no_memory(&old) {
            std::mem::forget(old);
        }
        Ok(())
    }
}

/// True when dropping `s` would free nothing. Destructured field by field, without `..`: a field
/// added to `SpanData` must be considered here, or its memory would leak.
#[inline(always)]
#[allow(clippy::inline_always, reason = "opt-level z inlines nothing that is not forced")]
fn owns_no_memory(s: &SpanData) -> bool {
    let SpanData {
        trace_id: _,
        span_id: _,
        trace_state,
        parent_span_id: _,
        flags: _,
        name,
        kind: _,
        start_time_unix_nano: _,
        end_time_unix_nano: _,
        attributes,
        dropped_attributes_count: _,
        events,
        dropped_events_count: _,
        links,
        dropped_links_count: _,
        status: Status { code: _, message },
    } = s;
    // (`Str::default()` is an owned empty string: no capacity, nothing to free.)
    let free = |s: &Str| match s {
        Cow::Borrowed(_) => true,
        Cow::Owned(o) => o.capacity() == 0,
    };
    trace_state.capacity() == 0
        && free(name)
        && attributes.capacity() == 0
        && events.capacity() == 0
        && links.capacity() == 0
        && free(message)
}

/// Writes record buffers: the reference implementation of the format (the JS encoders are tested
/// against [`decode`]; this one is used by the core's own tests and benchmarks).
#[derive(Debug)]
pub struct Encoder {
    buf: Vec<u8>,
    anchor: u64,
    sampled_out: u64,
    count: u64,
    slots: HashMap<String, u64>,
    /// Per-buffer slots of repeated string values, when on ([`Encoder::binding_values`]).
    values: Option<HashMap<String, u64>>,
}

impl Encoder {
    /// A buffer whose relative times count from `anchor` (unix nanoseconds).
    pub fn new(anchor: u64) -> Self {
        Self { buf: Vec::new(), anchor, sampled_out: 0, count: 0, slots: HashMap::new(), values: None }
    }

    /// Binds string attribute values to slots of their own (from 4096 up) and refers to them when
    /// they repeat, as the JS layer does with repeated values: the buffers the Node and WASM
    /// packages send, for tests and benchmarks of the decoder.
    #[must_use]
    pub fn binding_values(mut self) -> Self {
        self.values = Some(HashMap::new());
        self
    }

    /// Appends one span. Times before the anchor are written as negative offsets.
    pub fn push(&mut self, span: &SpanData) {
        self.count += 1;
        let b = &mut self.buf;
        b.extend_from_slice(&span.trace_id.0);
        b.extend_from_slice(&span.span_id.0);
        b.extend_from_slice(&span.parent_span_id.unwrap_or_default().0);
        varint(b, u64::from(span.flags));
        b.push(u8::try_from(span.kind.as_i32()).unwrap_or(0));
        b.push(span.status.code as u8);
        let anchor = self.anchor;
        self.time(anchor, span.start_time_unix_nano);
        self.time(anchor, span.end_time_unix_nano);
        self.interned(&span.name);
        self.literal(&span.trace_state);
        self.literal(&span.status.message);
        self.attributes(&span.attributes);
        varint(&mut self.buf, u64::from(span.dropped_attributes_count));
        varint(&mut self.buf, span.events.len() as u64);
        for e in &span.events {
            self.interned(&e.name);
            self.time(anchor, e.time_unix_nano);
            self.attributes(&e.attributes);
            varint(&mut self.buf, u64::from(e.dropped_attributes_count));
        }
        varint(&mut self.buf, u64::from(span.dropped_events_count));
        varint(&mut self.buf, span.links.len() as u64);
        for l in &span.links {
            self.buf.extend_from_slice(&l.trace_id.0);
            self.buf.extend_from_slice(&l.span_id.0);
            varint(&mut self.buf, u64::from(l.flags));
            self.literal(&l.trace_state);
            self.attributes(&l.attributes);
            varint(&mut self.buf, u64::from(l.dropped_attributes_count));
        }
        varint(&mut self.buf, u64::from(span.dropped_links_count));
    }

    /// Counts spans sampled out on the host side.
    pub fn sampled_out(&mut self, n: u64) {
        self.sampled_out += n;
    }

    /// The finished buffer.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 22);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.anchor.to_le_bytes());
        varint(&mut out, self.sampled_out);
        varint(&mut out, self.count);
        out.extend_from_slice(&self.buf);
        out
    }

    #[allow(clippy::cast_precision_loss)]
    fn time(&mut self, anchor: u64, t: u64) {
        let ms = if t >= anchor { (t - anchor) as f64 / 1e6 } else { -((anchor - t) as f64 / 1e6) };
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }

    fn literal(&mut self, s: &str) {
        varint(&mut self.buf, (s.len() as u64) << 1);
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn interned(&mut self, s: &str) {
        if let Some(&slot) = self.slots.get(s) {
            varint(&mut self.buf, (slot << 2) | 3);
            return;
        }
        let slot = self.slots.len() as u64;
        if slot >= MAX_SLOTS {
            self.literal(s);
            return;
        }
        self.slots.insert(s.to_owned(), slot);
        varint(&mut self.buf, (slot << 2) | 1);
        varint(&mut self.buf, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn attributes(&mut self, kvs: &[KeyValue]) {
        varint(&mut self.buf, kvs.len() as u64);
        for kv in kvs {
            self.interned(&kv.key);
            self.value(&kv.value);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => {
                self.buf.push(TAG_STRING);
                match self.values.as_mut() {
                    // From the first value slot up, as the JS layer numbers them.
                    Some(values) if ((DENSE_SLOTS + values.len()) as u64) < MAX_SLOTS => {
                        if let Some(&slot) = values.get(s.as_ref()) {
                            varint(&mut self.buf, (slot << 2) | 3);
                        } else {
                            let slot = (DENSE_SLOTS + values.len()) as u64;
                            values.insert(s.to_string(), slot);
                            varint(&mut self.buf, (slot << 2) | 1);
                            varint(&mut self.buf, s.len() as u64);
                            self.buf.extend_from_slice(s.as_bytes());
                        }
                    }
                    _ => self.literal(s),
                }
            }
            Value::Bool(b) => self.buf.push(if *b { TAG_TRUE } else { TAG_FALSE }),
            Value::Int(i) => {
                self.buf.push(TAG_INT);
                self.buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::Double(d) => {
                self.buf.push(TAG_DOUBLE);
                self.buf.extend_from_slice(&d.to_le_bytes());
            }
            Value::Bytes(bytes) => {
                self.buf.push(TAG_BYTES);
                varint(&mut self.buf, bytes.len() as u64);
                self.buf.extend_from_slice(bytes);
            }
            Value::Array(items) => {
                self.buf.push(TAG_ARRAY);
                varint(&mut self.buf, items.len() as u64);
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(kvs) => {
                self.buf.push(TAG_MAP);
                self.attributes(kvs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: u64 = 1_700_000_000_000_000_000;

    fn sample(n: u8) -> SpanData {
        SpanData {
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n.wrapping_add(1); 8]),
            parent_span_id: (n % 2 == 0).then_some(SpanId([9; 8])),
            trace_state: if n % 3 == 0 { "vendor=1".into() } else { String::new() },
            flags: 0x301,
            name: if n % 2 == 0 { "settle".into() } else { "verify".into() },
            kind: SpanKind::Server,
            start_time_unix_nano: ANCHOR + 1_000 * u64::from(n),
            end_time_unix_nano: ANCHOR + 2_000_000 + 1_000 * u64::from(n),
            attributes: vec![
                KeyValue::new("x402.network", "base-sepolia"),
                KeyValue::new("x402.attempt", 2i64),
                KeyValue::new("ratio", 0.5),
                KeyValue::new("ok", true),
                KeyValue::new("no", false),
                KeyValue::new("raw", Value::Bytes(vec![0, 1, 255])),
                KeyValue::new("list", vec!["a".to_owned(), "é".to_owned()]),
                KeyValue::new("map", Value::Map(vec![KeyValue::new("inner", Value::Array(vec![Value::Int(-1)]))])),
            ],
            dropped_attributes_count: u32::from(n),
            events: vec![Event {
                time_unix_nano: ANCHOR + 1_500_000,
                name: "retry".into(),
                attributes: vec![KeyValue::new("x402.attempt", 1i64)],
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 1,
            links: vec![Link {
                trace_id: TraceId([7; 16]),
                span_id: SpanId([8; 8]),
                trace_state: "a=b".into(),
                attributes: vec![KeyValue::new("why", "batch")],
                dropped_attributes_count: 3,
                flags: 1,
            }],
            dropped_links_count: 2,
            status: if n % 2 == 0 { Status::error("insufficient funds") } else { Status::ok() },
        }
    }

    #[test]
    fn round_trips_every_field() {
        let spans: Vec<_> = (0..20).map(sample).collect();
        let mut enc = Encoder::new(ANCHOR);
        for s in &spans {
            enc.push(s);
        }
        enc.sampled_out(300);
        let buf = enc.finish();
        let decoded = decode_records(&buf).unwrap();
        assert_eq!(decoded, Records { sampled_out: 300, spans });
        // Keys and names come from the shared intern table: no allocation per span.
        let again = decode(&buf).unwrap();
        assert!(again.iter().all(|s| matches!(s.name, Cow::Borrowed(_))));
        assert!(again.iter().flat_map(|s| &s.attributes).all(|kv| matches!(kv.key, Cow::Borrowed(_))));
        let (a, b) = (&again[0].attributes[0].key, &decoded.spans[0].attributes[0].key);
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()), "one copy of each key");
    }

    /// Repeated values bound to value slots, as the JS layer sends them, decode to the same spans,
    /// and a value slot is shared: its text is interned once.
    #[test]
    fn values_bound_to_slots_round_trip() {
        let spans: Vec<_> = (0..20).map(sample).collect();
        let mut enc = Encoder::new(ANCHOR).binding_values();
        for s in &spans {
            enc.push(s);
        }
        let buf = enc.finish();
        let mut literal = Encoder::new(ANCHOR);
        for s in &spans {
            literal.push(s);
        }
        let literal = literal.finish();
        assert!(buf.len() < literal.len(), "repeats are references: {} vs {}", buf.len(), literal.len());
        let decoded = decode(&buf).unwrap();
        assert_eq!(decoded, spans);
        let net = |s: &SpanData| match &s.attributes[0].value {
            Value::String(Cow::Borrowed(v)) => v.as_ptr(),
            other => panic!("not a shared value: {other:?}"),
        };
        assert!(std::ptr::eq(net(&decoded[0]), net(&decoded[19])));
    }

    /// Pooled boxes come back emptied but keep their attribute vectors' memory; whatever a box
    /// held, decoding into it gives exactly the span `decode_records` gives.
    #[test]
    fn decoding_into_used_boxes_writes_every_field() {
        let mut enc = Encoder::new(ANCHOR);
        for n in 0..6 {
            enc.push(&sample(n));
        }
        let buf = enc.finish();
        let mut used = sample(7);
        used.attributes.extend((0..20).map(|i| KeyValue::new("left.over", i64::from(i))));
        let (sampled_out, boxes) = decode_boxed(&buf, || Box::new(used.clone())).unwrap();
        let plain = decode_records(&buf).unwrap();
        assert_eq!(sampled_out, plain.sampled_out);
        assert_eq!(boxes.into_iter().map(|b| *b).collect::<Vec<_>>(), plain.spans);
        // A defect still rejects the whole buffer.
        assert!(decode_boxed(&buf[..buf.len() - 1], || Box::new(used.clone())).is_err());
    }

    #[test]
    fn times_before_the_anchor_and_sub_microsecond_survive() {
        let mut s = sample(1);
        s.start_time_unix_nano = ANCHOR - 123_456_789;
        s.end_time_unix_nano = ANCHOR + 1;
        let mut enc = Encoder::new(ANCHOR);
        enc.push(&s);
        assert_eq!(decode(&enc.finish()).unwrap()[0], s);
    }

    /// Appends `v` as a LEB128 varint.
    fn leb(b: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b.push(byte);
                return;
            }
            b.push(byte | 0x80);
        }
    }

    #[test]
    fn value_slots_in_every_range_resolve_to_their_strings() {
        // One span whose name and attribute values are bound to slots 7 (keys and names), 4096 and
        // 8191 (the value vector) and 8192 and 65,535 (the map past it), then used again by a
        // second attribute each.
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&ANCHOR.to_le_bytes());
        b.extend_from_slice(&[0, 1]);
        b.extend_from_slice(&[1; 16]);
        b.extend_from_slice(&[2; 8]);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[1, 0, 0]);
        b.extend_from_slice(&0.0f64.to_le_bytes());
        b.extend_from_slice(&1.0f64.to_le_bytes());
        leb(&mut b, 1 | (7 << 2));
        b.extend_from_slice(&[4, b'n', b'a', b'm', b'e', 0, 0]); // name "name" in slot 7; no state, message
        let slots = [4096u64, 8191, 8192, 65_535];
        b.push(8); // attributes
        for (i, slot) in slots.iter().enumerate() {
            b.extend_from_slice(&[4, b'k', b'0' + u8::try_from(i).unwrap(), TAG_STRING]); // literal key
            leb(&mut b, 1 | (slot << 2));
            let value = format!("v{slot}");
            leb(&mut b, value.len() as u64);
            b.extend_from_slice(value.as_bytes());
        }
        for (i, slot) in slots.iter().enumerate() {
            b.extend_from_slice(&[4, b'r', b'0' + u8::try_from(i).unwrap(), TAG_STRING]);
            leb(&mut b, 3 | (slot << 2));
        }
        b.extend_from_slice(&[0, 0, 0, 0, 0]); // dropped attributes, events, dropped events, links, dropped links
        let spans = decode(&b).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "name");
        let values: Vec<String> = spans[0]
            .attributes
            .iter()
            .map(|kv| match &kv.value {
                Value::String(s) => format!("{}={s}", kv.key),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            values,
            ["k0=v4096", "k1=v8191", "k2=v8192", "k3=v65535", "r0=v4096", "r1=v8191", "r2=v8192", "r3=v65535"]
        );
        // Short values bound to slots are shared from the process-wide table, not copied per use.
        for kv in &spans[0].attributes {
            assert!(matches!(&kv.value, Value::String(Cow::Borrowed(_))), "{kv:?}");
        }
    }

    #[test]
    fn interned_values_are_short_and_shared() {
        let a = intern_value(Cow::Owned("base-sepolia".to_owned()));
        let b = intern_value(Cow::Owned("base-sepolia".to_owned()));
        match (&a, &b) {
            (Cow::Borrowed(x), Cow::Borrowed(y)) => assert!(std::ptr::eq(*x, *y)),
            other => panic!("{other:?}"),
        }
        let long = "x".repeat(MAX_INTERNED_VALUE_LEN + 1);
        assert!(matches!(intern_value(Cow::Owned(long.clone())), Cow::Owned(s) if s == long));
    }

    #[test]
    fn repeated_strings_are_sent_once() {
        let mut one = Encoder::new(ANCHOR);
        one.push(&sample(2));
        let one = one.finish().len();
        let mut many = Encoder::new(ANCHOR);
        for _ in 0..10 {
            many.push(&sample(2));
        }
        let many = many.finish().len();
        assert!(many < one * 10 - 9 * "x402.network".len(), "{one} {many}");
    }

    #[test]
    fn empty_buffer_and_defects_are_rejected_whole() {
        let mut enc = Encoder::new(ANCHOR);
        enc.push(&sample(3));
        let good = enc.finish();
        assert_eq!(decode(&Encoder::new(ANCHOR).finish()).unwrap(), vec![]);
        for cut in [0, 3, 12, 13, 14, 40, good.len() - 1] {
            let e = decode(&good[..cut]).unwrap_err();
            assert_eq!(e.code(), "TRACEX_INVALID_RECORDS", "cut at {cut}: {e}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).unwrap_err().to_string().contains("trailing"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(decode(&magic).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn bad_slots_utf8_tags_depth_and_times_are_named() {
        let header = |count: u8| {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&ANCHOR.to_le_bytes());
            b.push(0);
            b.push(count);
            b
        };
        let span_prefix = |b: &mut Vec<u8>, start: f64| {
            b.extend_from_slice(&[1; 16]);
            b.extend_from_slice(&[2; 8]);
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[1, 0, 0]); // flags, kind, status
            b.extend_from_slice(&start.to_le_bytes());
            b.extend_from_slice(&1.0f64.to_le_bytes());
        };
        let err = |b: &[u8]| decode(b).unwrap_err().to_string();

        let mut unbound = header(1);
        span_prefix(&mut unbound, 0.0);
        unbound.push(3 | (5 << 2)); // reference to slot 5
        assert!(err(&unbound).contains("slot 5 used before"), "{}", err(&unbound));

        let mut utf8 = header(1);
        span_prefix(&mut utf8, 0.0);
        utf8.extend_from_slice(&[4, 0xff, 0xfe]);
        assert!(err(&utf8).contains("UTF-8"));

        let mut time = header(1);
        span_prefix(&mut time, f64::NAN);
        assert!(err(&time).contains("out of range"));

        let mut before_epoch = header(1);
        #[allow(clippy::cast_precision_loss, reason = "a millisecond offset well before the epoch")]
        span_prefix(&mut before_epoch, -(ANCHOR as f64) / 1e6 - 1000.0);
        assert!(err(&before_epoch).contains("out of range"));

        let mut twice = header(1);
        span_prefix(&mut twice, 0.0);
        twice.extend_from_slice(&[1, 1, b'a', 0, 0]); // name defines slot 0; trace_state ""; message ""
        twice.extend_from_slice(&[1, 1, 1, b'b', TAG_TRUE]); // attribute key defines slot 0 again
        assert!(err(&twice).contains("bound twice"), "{}", err(&twice));

        // The same rules for slots past the dense range (the JS layer's per-buffer value slots).
        // Value slots from 4096 (a vector from there) and past 8192 (a map), up to the last one.
        for slot in [4096u64, 5000, 8191, 8192, 65_535] {
            let mut unbound_high = header(1);
            span_prefix(&mut unbound_high, 0.0);
            leb(&mut unbound_high, 3 | (slot << 2));
            let e = err(&unbound_high);
            assert!(e.contains(&format!("slot {slot} used before")), "{e}");
            let mut twice_high = header(1);
            span_prefix(&mut twice_high, 0.0);
            leb(&mut twice_high, 1 | (slot << 2));
            twice_high.extend_from_slice(&[1, b'a', 0, 0]);
            twice_high.extend_from_slice(&[1]);
            leb(&mut twice_high, 1 | (slot << 2));
            twice_high.extend_from_slice(&[1, b'b', TAG_TRUE]);
            let e = err(&twice_high);
            assert!(e.contains(&format!("slot {slot} bound twice")), "{e}");
        }
        let mut past_the_last = header(1);
        span_prefix(&mut past_the_last, 0.0);
        leb(&mut past_the_last, 3 | (65_536 << 2));
        assert!(err(&past_the_last).contains("slot 65536 out of range"), "{}", err(&past_the_last));

        let mut tag = header(1);
        span_prefix(&mut tag, 0.0);
        tag.extend_from_slice(&[2, b'n', 0, 0, 1, 2, b'k', 9]);
        assert!(err(&tag).contains("unknown value tag 9"));

        let mut deep = header(1);
        span_prefix(&mut deep, 0.0);
        deep.extend_from_slice(&[2, b'n', 0, 0, 1, 2, b'k']);
        deep.extend(std::iter::repeat_n([TAG_ARRAY, 1], 10).flatten());
        deep.push(TAG_TRUE);
        assert!(err(&deep).contains("deeper"));
    }

    #[test]
    fn a_huge_declared_count_does_not_allocate() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&ANCHOR.to_le_bytes());
        b.push(0);
        varint(&mut b, u64::MAX);
        assert_eq!(decode(&b).unwrap_err().code(), "TRACEX_INVALID_RECORDS");
    }
}
