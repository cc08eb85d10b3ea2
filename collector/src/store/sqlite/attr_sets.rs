//! The attribute index's member sets: which traces of one epoch hold one attribute hash.
//!
//! `trace_attr_sets` (migration 10) has one row per `(project, epoch, attribute hash)` whose
//! `members` blob is the set of the epoch's traces holding that hash, by position in the epoch
//! (`trace_seq` modulo [`EPOCH_TRACES`]). It replaced one row per `(…, hash, trace_seq)`: a value
//! shared by the traces of a commit (scheme, network, asset, service, status) was one index
//! entry per trace, eight a trace in the ingest bench's shape, and with one-span traces the
//! entries were half of the writer's instructions (≈ 4,400 each: a B-tree descent, an insert and
//! its share of page splits). Now a commit writes each distinct `(epoch, hash)` once, merged into
//! the stored set; a high-cardinality value (payer, amount) is still one small row per trace.
//!
//! Encoding (canonical, so equal sets are equal blobs): up to [`LIST_MAX`] (255) members, the
//! positions as sorted little-endian `u16`s (2 bytes each); more, a bitmap of [`BITMAP_BYTES`]
//! (bit `p % 8` of byte `p / 8`). The lengths cannot collide: a list is at most 510 bytes. The empty
//! set is never stored (its row is deleted).
//!
//! The SQL functions here ([`register`]) let statements read and write sets in place: the probe
//! for one trace is a point lookup and a bit test (`tracex_has`), a commit merges with an upsert
//! (`tracex_merge`), retention removes a trace (`tracex_remove`), and migration 10 builds the sets
//! from the old rows (`tracex_set_of`).

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};

use super::ATTR_EPOCH_SHIFT;

/// Traces in an epoch: positions run from 0 to this, exclusive.
pub(super) const EPOCH_TRACES: usize = 1 << ATTR_EPOCH_SHIFT;
/// A bitmap's size: one bit per position.
const BITMAP_BYTES: usize = EPOCH_TRACES / 8;
/// Most members kept as a list (510 bytes, under a bitmap's 512).
const LIST_MAX: usize = BITMAP_BYTES / 2 - 1;

/// A stored set that is neither encoding (a corrupt row).
#[derive(Debug)]
pub(super) struct Malformed(usize);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an attribute set of {} bytes is neither a sorted list nor a bitmap", self.0)
    }
}

impl std::error::Error for Malformed {}

/// `seq`'s position in its epoch.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "masked to 12 bits")]
pub(super) fn position(seq: i64) -> u16 {
    (seq & ((1 << ATTR_EPOCH_SHIFT) - 1)) as u16
}

/// The sequence number at `position` of `epoch`.
pub(super) fn seq_at(epoch: i64, position: u16) -> i64 {
    (epoch << ATTR_EPOCH_SHIFT) | i64::from(position)
}

/// Encodes sorted, distinct positions.
pub(super) fn encode(positions: &[u16]) -> Vec<u8> {
    debug_assert!(positions.windows(2).all(|w| w[0] < w[1]));
    if positions.len() <= LIST_MAX {
        positions.iter().flat_map(|p| p.to_le_bytes()).collect()
    } else {
        let mut bits = vec![0u8; BITMAP_BYTES];
        for &p in positions {
            bits[usize::from(p) / 8] |= 1 << (p % 8);
        }
        bits
    }
}

/// The positions of a stored set, in order.
pub(super) fn decode(set: &[u8]) -> Result<Vec<u16>, Malformed> {
    if set.len() == BITMAP_BYTES {
        let mut out = Vec::new();
        for (i, &byte) in set.iter().enumerate() {
            let mut b = byte;
            while b != 0 {
                #[allow(clippy::cast_possible_truncation, reason = "i < 512, so i * 8 + 7 < 4096")]
                out.push((i * 8) as u16 + b.trailing_zeros() as u16);
                b &= b - 1;
            }
        }
        return Ok(out);
    }
    let list = list(set)?;
    let out: Vec<u16> = list.map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if out.windows(2).all(|w| w[0] < w[1]) && out.last().is_none_or(|&p| usize::from(p) < EPOCH_TRACES) {
        Ok(out)
    } else {
        Err(Malformed(set.len()))
    }
}

fn list(set: &[u8]) -> Result<std::slice::ChunksExact<'_, u8>, Malformed> {
    if set.len() % 2 == 0 && set.len() / 2 <= LIST_MAX { Ok(set.chunks_exact(2)) } else { Err(Malformed(set.len())) }
}

/// Whether `set` holds `position`: a bit test, or a binary search of the list.
pub(super) fn contains(set: &[u8], position: u16) -> Result<bool, Malformed> {
    if set.len() == BITMAP_BYTES {
        return Ok(set[usize::from(position) / 8] & (1 << (position % 8)) != 0);
    }
    let n = list(set)?.len();
    let at = |i: usize| u16::from_le_bytes([set[2 * i], set[2 * i + 1]]);
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = usize::midpoint(lo, hi);
        match at(mid).cmp(&position) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(true),
        }
    }
    Ok(false)
}

/// The union of two stored sets.
pub(super) fn merge(a: &[u8], b: &[u8]) -> Result<Vec<u8>, Malformed> {
    if a.len() == BITMAP_BYTES && b.len() == BITMAP_BYTES {
        return Ok(a.iter().zip(b).map(|(x, y)| x | y).collect());
    }
    let (a, b) = (decode(a)?, decode(b)?);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    Ok(encode(&out))
}

/// `set` without `position` (empty when it was the only member).
pub(super) fn remove(set: &[u8], position: u16) -> Result<Vec<u8>, Malformed> {
    if set.len() == BITMAP_BYTES {
        // Retention removes traces one by one: the bit is cleared in place rather than every
        // position (up to 4,096) decoded and encoded again; a list again once few are left.
        let mut bits = set.to_vec();
        bits[usize::from(position) / 8] &= !(1 << (position % 8));
        if bits.iter().map(|b| b.count_ones() as usize).sum::<usize>() > LIST_MAX {
            return Ok(bits);
        }
        return Ok(encode(&decode(&bits)?));
    }
    let mut members = decode(set)?;
    members.retain(|&p| p != position);
    Ok(encode(&members))
}

/// A commit's sets: `rows` (`(project, hash, trace_seq)`, any order, repeats allowed) as one set
/// per `(project, epoch, hash)`, sorted by that key (the table's), each encoded.
///
/// The rows are put in `(project, epoch)` runs (a commit's rows, in trace order, nearly are), then
/// each run is grouped by hash through a map and only its distinct hashes are sorted: sorting every
/// row on the full key was 8.5 % of the writer's instructions with one-span traces (eight rows a
/// trace, one set a trace; callgrind, `--bench store`). Timed in one process over 32,768
/// one-span traces of that shape: the sort 275–320 ns a trace, a map per run 160–190, and one map
/// for the whole commit 310–370 (its table left the cache). The map's hash is seeded: an
/// ingest-key holder cannot pick values whose hashes collide in it.
pub(super) fn group(rows: &mut [(i64, i64, i64)]) -> Vec<(i64, i64, i64, Vec<u8>)> {
    // Stable, and in trace order within a run: each set's members come out in order.
    rows.sort_by_key(|&(project, _, seq)| (project, seq >> ATTR_EPOCH_SHIFT, seq));
    let mut out = Vec::new();
    let mut index: foldhash::HashMap<i64, u32> = foldhash::HashMap::default();
    // Per set of the run: its hash and its row count; per row of the run: its set.
    let mut sets: Vec<(i64, u32)> = Vec::new();
    let mut of_row: Vec<u32> = Vec::new();
    let mut order: Vec<(i64, u32)> = Vec::new();
    let (mut start, mut end, mut positions): (Vec<usize>, Vec<usize>, Vec<u16>) = (Vec::new(), Vec::new(), Vec::new());
    for run in rows.chunk_by(|a, b| (a.0, a.2 >> ATTR_EPOCH_SHIFT) == (b.0, b.2 >> ATTR_EPOCH_SHIFT)) {
        let (project, epoch) = (run[0].0, run[0].2 >> ATTR_EPOCH_SHIFT);
        index.clear();
        sets.clear();
        of_row.clear();
        for &(_, hash, _) in run {
            let next = u32::try_from(sets.len()).unwrap_or(u32::MAX);
            let set = *index.entry(hash).or_insert_with(|| {
                sets.push((hash, 0));
                next
            });
            sets[set as usize].1 += 1;
            of_row.push(set);
        }
        // The run's sets in hash order, each given its range of `positions`.
        order.clear();
        order.extend(sets.iter().zip(0..).map(|((hash, _), i)| (*hash, i)));
        order.sort_unstable();
        start.clear();
        start.resize(sets.len(), 0);
        let mut at = 0;
        for &(_, s) in &order {
            start[s as usize] = at;
            at += sets[s as usize].1 as usize;
        }
        end.clone_from(&start);
        positions.clear();
        positions.resize(run.len(), 0);
        for (&(_, _, seq), &s) in run.iter().zip(&of_row) {
            let (from, to) = (start[s as usize], &mut end[s as usize]);
            // A repeated row (the same trace twice) is one member.
            if *to == from || positions[*to - 1] != position(seq) {
                positions[*to] = position(seq);
                *to += 1;
            }
        }
        out.extend(
            order
                .iter()
                .map(|&(hash, s)| (project, epoch, hash, encode(&positions[start[s as usize]..end[s as usize]]))),
        );
    }
    out
}

/// Registers the SQL functions on `conn`:
///
/// - `tracex_has(members, trace_seq)`: whether the set holds the trace;
/// - `tracex_merge(a, b)`: the union of two sets;
/// - `tracex_remove(members, trace_seq)`: the set without the trace (an empty blob when none is left);
/// - `tracex_set_of(json)`: the set of a JSON array of trace sequence numbers (of one epoch).
///
/// A blob of neither encoding's length is an error of the statement, never read as empty. The
/// probe (`tracex_has`) trusts a list's order, which only `encode` writes; everything that decodes
/// a set checks it.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    let fail = |e: Malformed| rusqlite::Error::UserFunctionError(Box::new(e));
    conn.create_scalar_function("tracex_has", 2, flags, move |ctx| {
        contains(blob_arg(ctx, 0)?, position(ctx.get(1)?)).map_err(fail)
    })?;
    conn.create_scalar_function("tracex_merge", 2, flags, move |ctx| {
        merge(blob_arg(ctx, 0)?, blob_arg(ctx, 1)?).map_err(fail)
    })?;
    conn.create_scalar_function("tracex_remove", 2, flags, move |ctx| {
        remove(blob_arg(ctx, 0)?, position(ctx.get(1)?)).map_err(fail)
    })?;
    conn.create_scalar_function("tracex_set_of", 1, flags, |ctx| {
        let json: String = ctx.get(0)?;
        let seqs: Vec<i64> =
            serde_json::from_str(&json).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
        let mut positions: Vec<u16> = seqs.into_iter().map(position).collect();
        positions.sort_unstable();
        positions.dedup();
        Ok(encode(&positions))
    })
}

/// For tests that take a database back to an earlier schema: `tracex_members(epoch, members)`,
/// the set's trace sequence numbers as a JSON array.
#[cfg(test)]
pub(super) fn register_members(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("tracex_members", 2, FunctionFlags::SQLITE_UTF8, |ctx| {
        let epoch: i64 = ctx.get(0)?;
        let members = decode(blob_arg(ctx, 1)?).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
        let seqs: Vec<i64> = members.into_iter().map(|p| seq_at(epoch, p)).collect();
        serde_json::to_string(&seqs).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    })
}

fn blob_arg<'a>(ctx: &'a Context<'_>, idx: usize) -> rusqlite::Result<&'a [u8]> {
    ctx.get_raw(idx)
        .as_blob()
        .map_err(|_| rusqlite::Error::InvalidFunctionParameterType(idx, ctx.get_raw(idx).data_type()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(positions: &[u16]) -> Vec<u8> {
        encode(positions)
    }

    #[test]
    fn group_matches_a_sort_of_every_row() {
        let mut rng = crate::store::common::bench_data::Rng(7);
        for round in 0..40 {
            let n = [0, 1, 7, 300, 5000][round % 5];
            // Few projects, epochs and hashes, so that sets have many members; rows in trace order
            // but for every third round, and repeats.
            let mut rows: Vec<(i64, i64, i64)> = (0..n)
                .map(|_| {
                    let r = rng.next();
                    let hash = i64::try_from(r % 13).unwrap() - 6;
                    let seq = i64::try_from((r >> 8) % 3 * 4096 + (r >> 16) % 4096).unwrap();
                    (i64::try_from((r >> 32) % 2).unwrap() + 1, hash, seq)
                })
                .collect();
            if round % 3 != 0 {
                rows.sort_by_key(|r| r.2);
            }
            let mut model: std::collections::BTreeMap<(i64, i64, i64), std::collections::BTreeSet<u16>> =
                std::collections::BTreeMap::new();
            for &(project, hash, seq) in &rows {
                model.entry((project, seq >> ATTR_EPOCH_SHIFT, hash)).or_default().insert(position(seq));
            }
            let want: Vec<(i64, i64, i64, Vec<u8>)> =
                model.into_iter().map(|((p, e, h), m)| (p, e, h, encode(&m.into_iter().collect::<Vec<_>>()))).collect();
            assert_eq!(group(&mut rows), want, "round {round}");
        }
    }

    #[test]
    fn lists_become_bitmaps_past_255_members_and_back() {
        let small: Vec<u16> = (0..255).map(|i| i * 16).collect();
        assert_eq!(set(&small).len(), 510);
        let big: Vec<u16> = (0..256).map(|i| i * 16).collect();
        assert_eq!(set(&big).len(), 512);
        assert_eq!(decode(&set(&big)).unwrap(), big);
        assert_eq!(decode(&set(&small)).unwrap(), small);
        // Removing one member of 256 gives the list encoding again (canonical).
        assert_eq!(remove(&set(&big), 16).unwrap(), set(&big.iter().copied().filter(|&p| p != 16).collect::<Vec<_>>()));
    }

    #[test]
    fn contains_len_merge_and_remove_agree_with_a_model() {
        let mut rng = crate::store::common::bench_data::Rng(3);
        for round in 0..200 {
            let n = [0, 1, 2, 100, 255, 256, 300, 4096][round % 8];
            let mut a: Vec<u16> = (0..n).map(|_| position(i64::try_from(rng.next() % 4096).unwrap())).collect();
            let mut b: Vec<u16> = (0..=n / 2).map(|_| position(i64::try_from(rng.next() % 4096).unwrap())).collect();
            a.sort_unstable();
            a.dedup();
            b.sort_unstable();
            b.dedup();
            let (sa, sb) = (set(&a), set(&b));
            assert_eq!(decode(&sa).unwrap(), a);
            for p in [0u16, 1, 7, 8, 2047, 4095] {
                assert_eq!(contains(&sa, p).unwrap(), a.contains(&p), "{p} in {} members", a.len());
            }
            for &p in &a {
                assert!(contains(&sa, p).unwrap());
            }
            let mut union: Vec<u16> = a.iter().chain(&b).copied().collect();
            union.sort_unstable();
            union.dedup();
            assert_eq!(merge(&sa, &sb).unwrap(), set(&union));
            if let Some(&first) = a.first() {
                let rest: Vec<u16> = a[1..].to_vec();
                assert_eq!(remove(&sa, first).unwrap(), set(&rest));
            }
        }
        assert!(set(&[]).is_empty());
    }

    #[test]
    fn malformed_sets_are_errors_not_empty() {
        for bad in [vec![1u8], vec![0u8; 514], vec![2, 0, 1, 0], vec![1, 0, 1, 0], vec![0, 16]] {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
        assert!(contains(&[1, 2, 3], 0).is_err());
        assert!(merge(&[1], &[]).is_err());
    }

    #[test]
    fn the_sql_functions_read_and_write_sets() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        // Epoch 1's traces 4097 and 4100 (positions 1 and 4).
        assert_eq!(q("SELECT tracex_has(tracex_set_of('[4100, 4097]'), 4097)"), 1);
        assert_eq!(q("SELECT tracex_has(tracex_set_of('[4100, 4097]'), 4098)"), 0);
        assert_eq!(q("SELECT length(tracex_merge(tracex_set_of('[1]'), tracex_set_of('[2, 1]')))"), 4);
        assert_eq!(q("SELECT length(tracex_remove(tracex_set_of('[1]'), 1))"), 0);
        let err = conn.query_row("SELECT tracex_has(x'010203', 1)", [], |r| r.get::<_, i64>(0)).unwrap_err();
        assert!(err.to_string().contains("neither a sorted list nor a bitmap"), "{err}");
    }
}
