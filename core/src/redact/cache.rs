//! Per-thread memo of redaction decisions that depend only on immutable inputs. Redaction runs on
//! the batcher thread; without the memo every attribute key is matched against ~60 rule names for
//! every span. Entries are tied to one rule set (by its id) and the memo is bounded.
//!
//! Keys are almost always `&'static str` (literals, or interned by the record-buffer decoder), so
//! the first level is a small direct-mapped table keyed by the key's address and length: a hit
//! costs two compares, not hashing the key's bytes (measured: the hashed lookup alone was ≈ 25 ns
//! an attribute, half of what redacting a typical span cost). Keys that are not static go through
//! the map keyed by their text. Static string values found clean are remembered the same way.
//!
//! In front of both, a static key with a static string or scalar value that redaction left as it
//! was is remembered as a pair (addresses and lengths), so the next span with the same pair pays
//! one probe instead of the key's lookup, the value's and the calls around them: 1,343 → 798
//! instructions for the seal bench's typical span (callgrind, docs/benchmarks.md). Every static
//! string here is leaked by whoever made it (literals, the bindings' intern tables), so an address
//! never comes back holding other text.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::{KeyClass, Rules};
use crate::model::{KeyValue, Value};

/// Entries kept in the text-keyed map before it is cleared (dynamic keys must not grow memory
/// unbounded).
const MAX_ENTRIES: usize = 4096;

/// Slots of each direct-mapped table (a power of two). A collision only costs a recomputation.
const SLOTS: usize = 512;

/// Slots of the pairs' table (a power of two; 24 KB).
const PAIR_SLOTS: usize = 1024;

/// FNV-1a: keys are short and not attacker-chosen in bulk; the map is bounded anyway.
#[derive(Default)]
struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}
type Build = BuildHasherDefault<Fnv>;

/// The memo of one thread, for one rule set at a time.
pub(super) struct Memo {
    rules: u64,
    keys: HashMap<Box<str>, KeyClass, Build>,
    /// `(address, length, class)` of static keys; address 0 is an empty slot.
    static_keys: Box<[(usize, usize, KeyClass)]>,
    /// `(address, length | numeric bit)` of static values found clean.
    clean_static: Box<[(usize, usize)]>,
    /// Static key–value pairs redaction leaves as they are ([`PairId`]); key address 0 is an
    /// empty slot.
    clean_pairs: Box<[PairId]>,
}

/// A key–value pair whose redaction depends on nothing but its identity: a static key with a
/// static string or a scalar (whose content no value rule reads): `(key address, value address,
/// key length << 32 | value length)`; a scalar has address `usize::MAX` and length [`SCALAR`].
pub(super) type PairId = (usize, usize, u64);

/// The value length of a scalar in a [`PairId`] (no string is 2^32 − 1 bytes long here).
const SCALAR: u64 = 0xffff_ffff;

/// The identity of `kv` when it is a static pair ([`PairId`]).
#[inline]
pub(super) fn pair_id(kv: &KeyValue) -> Option<PairId> {
    let Cow::Borrowed(k) = &kv.key else { return None };
    let (addr, len) = match &kv.value {
        Value::String(Cow::Borrowed(v)) => (v.as_ptr() as usize, (v.len() as u64) & SCALAR),
        Value::Bool(_) | Value::Int(_) | Value::Double(_) | Value::Bytes(_) => (usize::MAX, SCALAR),
        _ => return None,
    };
    Some((k.as_ptr() as usize, addr, (k.len() as u64) << 32 | len))
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            rules: 0,
            keys: HashMap::default(),
            static_keys: vec![(0, 0, KeyClass::default()); SLOTS].into_boxed_slice(),
            clean_static: vec![(0, 0); SLOTS].into_boxed_slice(),
            clean_pairs: vec![(0, 0, 0); PAIR_SLOTS].into_boxed_slice(),
        }
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// Runs `f` with this thread's memo for `rules` (emptied when the rule set changed). Borrow it once
/// per span or list, not per lookup.
pub(super) fn with<T>(rules: &Arc<Rules>, f: impl FnOnce(&mut Memo) -> T) -> T {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.rules != rules.id {
            *m = Memo { rules: rules.id, ..Memo::default() };
        }
        f(&mut m)
    })
}

/// The slot of a static string at `addr` of `len` bytes.
#[inline]
fn slot(addr: usize, len: usize) -> usize {
    mix(addr as u64 ^ (len as u64).rotate_left(32), SLOTS)
}

/// Multiplicative (Fibonacci) hashing of `x` to one of `slots` (a power of two): the top bits of
/// the product depend on every bit of `x`, where keys' addresses are aligned and close together.
#[inline]
fn mix(x: u64, slots: usize) -> usize {
    // The shift leaves at most log2(slots) bits: the cast cannot truncate them.
    #[allow(clippy::cast_possible_truncation)]
    let slot = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - slots.trailing_zeros())) as usize;
    slot
}

impl Memo {
    /// The class of `key`, computed by `compute` the first time.
    #[allow(clippy::ptr_arg, reason = "whether the key is borrowed (static) is what the table keys on")]
    #[inline]
    pub(super) fn key_class(&mut self, key: &Cow<'static, str>, compute: impl FnOnce() -> KeyClass) -> KeyClass {
        let Cow::Borrowed(k) = key else {
            return self.key_class_by_text(key, compute);
        };
        let (addr, len) = (k.as_ptr() as usize, k.len());
        let s = slot(addr, len);
        let (a, l, c) = self.static_keys[s];
        if a == addr && l == len {
            return c;
        }
        let c = self.key_class_by_text(k, compute);
        self.static_keys[s] = (addr, len, c);
        c
    }

    #[cold]
    fn key_class_by_text(&mut self, key: &str, compute: impl FnOnce() -> KeyClass) -> KeyClass {
        if let Some(c) = self.keys.get(key) {
            return *c;
        }
        let c = compute();
        if self.keys.len() >= MAX_ENTRIES {
            self.keys.clear();
        }
        self.keys.insert(key.into(), c);
        c
    }

    /// Whether redaction leaves the pair `id` as it is (it did before).
    #[inline]
    pub(super) fn is_clean_pair(&self, id: PairId) -> bool {
        self.clean_pairs[pair_slot(id)] == id
    }

    /// Remembers that redaction leaves the pair `id` as it is.
    pub(super) fn mark_clean_pair(&mut self, id: PairId) {
        self.clean_pairs[pair_slot(id)] = id;
    }

    /// Whether the static value `s` was found clean (`numeric`: under an amount-like key).
    #[inline]
    pub(super) fn is_clean_static(&self, s: &'static str, numeric: bool) -> bool {
        let (addr, tagged) = (s.as_ptr() as usize, tag(s.len(), numeric));
        self.clean_static[slot(addr, tagged)] == (addr, tagged)
    }

    /// Remembers that the static value `s` is clean.
    pub(super) fn mark_clean_static(&mut self, s: &'static str, numeric: bool) {
        let (addr, tagged) = (s.as_ptr() as usize, tag(s.len(), numeric));
        self.clean_static[slot(addr, tagged)] = (addr, tagged);
    }
}

/// The slot of a pair in `clean_pairs`.
#[inline]
fn pair_slot((key, value, lens): PairId) -> usize {
    mix((key as u64).rotate_left(17) ^ (value as u64) ^ lens.rotate_left(40), PAIR_SLOTS)
}

/// The length with the numeric bit on top (a value is clean or not per key kind).
fn tag(len: usize, numeric: bool) -> usize {
    len | (usize::from(numeric) << (usize::BITS - 1))
}
