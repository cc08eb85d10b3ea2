//! Per-thread memo of redaction decisions that depend only on immutable inputs. Redaction runs on
//! the batcher thread; without the memo every attribute key is matched against ~60 rule names for
//! every span. Entries are tied to one rule set (by the `Arc` address) and the memo is bounded.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::{KeyClass, Rules};

/// Entries kept per map before it is cleared (dynamic keys must not grow memory unbounded).
const MAX_ENTRIES: usize = 4096;

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

#[derive(Default)]
struct Memo {
    rules: u64,
    keys: HashMap<Box<str>, KeyClass, Build>,
    clean_static: HashSet<(usize, usize, bool), Build>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

fn with<T>(rules: &Arc<Rules>, f: impl FnOnce(&mut Memo) -> T) -> T {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let id = rules.id;
        if m.rules != id {
            m.keys.clear();
            m.clean_static.clear();
            m.rules = id;
        }
        f(&mut m)
    })
}

pub(super) fn key_class(rules: &Arc<Rules>, key: &str, compute: impl FnOnce() -> KeyClass) -> KeyClass {
    if let Some(c) = with(rules, |m| m.keys.get(key).copied()) {
        return c;
    }
    let c = compute();
    with(rules, |m| {
        if m.keys.len() >= MAX_ENTRIES {
            m.keys.clear();
        }
        m.keys.insert(key.into(), c);
    });
    c
}

pub(super) fn is_clean_static(rules: &Arc<Rules>, id: (usize, usize, bool)) -> bool {
    with(rules, |m| m.clean_static.contains(&id))
}

pub(super) fn mark_clean_static(rules: &Arc<Rules>, id: (usize, usize, bool)) {
    with(rules, |m| {
        if m.clean_static.len() >= MAX_ENTRIES {
            m.clean_static.clear();
        }
        m.clean_static.insert(id);
    });
}
