//! Id generation and randomness.
//!
//! Trace and span ids come from a per-thread xoshiro256++ generator seeded from the operating
//! system (`getrandom`): ids must be unpredictable enough to be unique, not secret, and the hot path
//! cannot afford a syscall per span. Everything secret (data keys, nonces, batch ids) comes straight
//! from `getrandom` through [`fill_random`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::model::{SpanId, TraceId};

/// Fills `buf` from the operating system's CSPRNG (WebCrypto on wasm32).
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(e.to_string()))
}

/// Bumped by [`reseed_after_fork`]; a thread whose generator was seeded under an older epoch reseeds.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Forces every thread's id generator to reseed before its next id. Call in a forked child (the
/// Python binding does so from an `os.register_at_fork` hook), so parent and child never repeat ids.
pub fn reseed_after_fork() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

struct Xoshiro {
    s: Cell<[u64; 4]>,
    epoch: Cell<u64>,
    seeded: Cell<bool>,
}

thread_local! {
    static RNG: Xoshiro = const { Xoshiro { s: Cell::new([0; 4]), epoch: Cell::new(0), seeded: Cell::new(false) } };
}

fn seed() -> [u64; 4] {
    let mut bytes = [0u8; 32];
    if fill_random(&mut bytes).is_err() {
        // No OS randomness (should not happen): fall back to the address of a stack slot and the
        // clock, which still gives distinct streams per thread.
        let addr = std::ptr::from_ref(&bytes) as usize as u64;
        bytes[..8].copy_from_slice(&addr.to_le_bytes());
        bytes[8..16].copy_from_slice(&crate::clock::Clock::now_unix_nanos(&crate::clock::SystemClock).to_le_bytes());
    }
    let mut s = [0u64; 4];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        s[i] = u64::from_le_bytes(w);
    }
    if s == [0; 4] {
        s[0] = 0x9E37_79B9_7F4A_7C15;
    }
    s
}

fn next_u64() -> u64 {
    let [w] = next_words::<1>();
    w
}

/// `N` consecutive outputs of this thread's generator, in one visit to its thread-local state (a
/// root span takes three words: trace and span id, [`new_root_ids_at`]).
#[inline]
fn next_words<const N: usize>() -> [u64; N] {
    RNG.with(|r| {
        let epoch = EPOCH.load(Ordering::Relaxed);
        if !r.seeded.get() || r.epoch.get() != epoch {
            r.s.set(seed());
            r.epoch.set(epoch);
            r.seeded.set(true);
        }
        let mut s = r.s.get();
        let words = std::array::from_fn(|_| {
            let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
            let t = s[1] << 17;
            s[2] ^= s[0];
            s[3] ^= s[1];
            s[1] ^= s[2];
            s[0] ^= s[3];
            s[2] ^= t;
            s[3] = s[3].rotate_left(45);
            result
        });
        r.s.set(s);
        words
    })
}

/// A fast uniform random number in `[0, 1)` (backoff jitter; not for secrets).
pub fn random_unit() -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let r = (next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    r
}

/// A new valid trace id for a trace starting now: see [`new_trace_id_at`].
pub fn new_trace_id() -> TraceId {
    new_trace_id_at(crate::clock::Clock::now_unix_nanos(&crate::clock::SystemClock))
}

/// Bytes of a new trace id that hold its start time: unix milliseconds, big-endian (48 bits, as
/// in UUIDv7; they last until the year 10889).
pub const TRACE_ID_TIME_BYTES: usize = 6;

/// A new valid trace id for a trace starting at `start_unix_nanos`: its first
/// [`TRACE_ID_TIME_BYTES`] bytes are the start in unix milliseconds (big-endian), the other ten
/// random.
///
/// Why not sixteen random bytes: the collector finds a trace by its id in a B-tree index, and a
/// random key puts every new trace on a page of its own, anywhere in the index — each written
/// again to the WAL at the next commit. With one-span traces that index was half of the SQLite
/// writer's CPU and two thirds of the bytes it wrote (`--bench store`: 14.0 µs and 5,305 bytes a
/// span with random ids, 7.8 µs and 1,857 with time-ordered ones; docs/benchmarks.md). Ids that start
/// with the time land at the index's end, a few pages per commit, as AWS X-Ray's do (seconds
/// there). W3C Trace Context level 2 asks only that the rightmost 7 bytes be random; sampling
/// reads the low 8 bytes ([`crate::Sampler`]), which stay random. What the prefix tells whoever
/// sees a `traceparent` is when the trace started, to the millisecond.
pub fn new_trace_id_at(start_unix_nanos: u64) -> TraceId {
    loop {
        let [high, low] = next_words::<2>();
        if let Some(id) = trace_id_from(start_unix_nanos, high, low) {
            return id;
        }
    }
}

/// The trace id [`new_trace_id_at`] makes from two random words; `None` when invalid (all zero).
#[inline]
fn trace_id_from(start_unix_nanos: u64, high: u64, low: u64) -> Option<TraceId> {
    let ms = (start_unix_nanos / 1_000_000).to_be_bytes();
    let mut b = [0u8; 16];
    b[..TRACE_ID_TIME_BYTES].copy_from_slice(&ms[8 - TRACE_ID_TIME_BYTES..]);
    b[TRACE_ID_TIME_BYTES..8].copy_from_slice(&high.to_be_bytes()[..8 - TRACE_ID_TIME_BYTES]);
    b[8..].copy_from_slice(&low.to_be_bytes());
    Some(TraceId(b)).filter(TraceId::is_valid)
}

/// A new random, valid span id.
pub fn new_span_id() -> SpanId {
    loop {
        if let Some(id) = span_id_from(next_u64()) {
            return id;
        }
    }
}

/// The span id [`new_span_id`] makes from a random word; `None` when invalid (all zero).
#[inline]
fn span_id_from(word: u64) -> Option<SpanId> {
    Some(SpanId(word.to_be_bytes())).filter(SpanId::is_valid)
}

/// A root span's trace id ([`new_trace_id_at`]) and span id ([`new_span_id`]) from one visit to
/// the generator: three visits cost the recording thread 64 instructions a span more (674 against
/// 610, callgrind, `examples/hot_loop.rs`).
#[inline]
pub(crate) fn new_root_ids_at(start_unix_nanos: u64) -> (TraceId, SpanId) {
    let [high, low, span] = next_words::<3>();
    // An all-zero word (once in 2^64 draws) is drawn again, as the single-id functions do.
    let trace = trace_id_from(start_unix_nanos, high, low).unwrap_or_else(|| new_trace_id_at(start_unix_nanos));
    (trace, span_id_from(span).unwrap_or_else(new_span_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_valid_and_distinct() {
        let spans: HashSet<_> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(spans.len(), 10_000);
        let traces: HashSet<_> = (0..10_000).map(|_| new_trace_id()).collect();
        assert_eq!(traces.len(), 10_000);
    }

    #[test]
    fn trace_ids_start_with_their_start_in_unix_milliseconds() {
        // 2025-12-06T06:13:20.123456789Z
        let start = 1_765_001_600_123_456_789;
        let ids: Vec<_> = (0..1_000).map(|_| new_trace_id_at(start)).collect();
        for id in &ids {
            assert_eq!(id.to_hex()[..12], format!("{:012x}", 1_765_001_600_123u64));
        }
        // The other ten bytes are random: no two alike, and the low 8 bytes (what sampling reads)
        // take both halves of their range.
        let distinct: HashSet<_> = ids.iter().map(|id| id.0[6..].to_vec()).collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids.iter().any(|id| id.0[8] < 0x80) && ids.iter().any(|id| id.0[8] >= 0x80));
        // Later starts sort after earlier ones, which is what the collector's index is after.
        assert!(new_trace_id_at(start + 1_000_000).0 > new_trace_id_at(start).0);
        let now = crate::clock::Clock::now_unix_nanos(&crate::clock::SystemClock) / 1_000_000;
        let prefix = u64::from_str_radix(&new_trace_id().to_hex()[..12], 16).unwrap();
        assert!(prefix.abs_diff(now) < 60_000, "{prefix} vs {now}");
    }

    #[test]
    fn a_root_spans_ids_come_from_one_draw_and_are_like_the_others() {
        let start = 1_765_001_600_123_456_789;
        let ids: Vec<(TraceId, SpanId)> = (0..10_000).map(|_| new_root_ids_at(start)).collect();
        let traces: HashSet<_> = ids.iter().map(|(t, _)| t.0).collect();
        let spans: HashSet<_> = ids.iter().map(|(_, s)| s.0).collect();
        assert_eq!((traces.len(), spans.len()), (10_000, 10_000));
        for (trace, span) in &ids {
            assert!(trace.is_valid() && span.is_valid());
            assert_eq!(trace.to_hex()[..12], format!("{:012x}", 1_765_001_600_123u64));
            // Three different words: the span id is not a copy of the trace id's random part.
            assert_ne!(trace.0[8..], span.0);
        }
        assert!(ids.iter().any(|(_, s)| s.0[0] < 0x80) && ids.iter().any(|(_, s)| s.0[0] >= 0x80));
    }

    #[test]
    fn threads_get_different_streams() {
        let a = std::thread::spawn(new_span_id).join().unwrap();
        let b = std::thread::spawn(new_span_id).join().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn reseed_changes_the_stream() {
        let before: Vec<_> = (0..4).map(|_| new_span_id()).collect();
        reseed_after_fork();
        let after: Vec<_> = (0..4).map(|_| new_span_id()).collect();
        assert_ne!(before, after);
    }
}
