//! The log's Merkle tree over stored nodes: RFC 6962 hashing (the core's `audit::merkle`), but
//! every hash a proof needs comes from the *perfect* subtrees the store keeps — node `(level, i)`
//! covers leaves `[i·2^level, (i+1)·2^level)`, level 0 being the leaf hashes — so a root or proof
//! of a log of 10^9 leaves reads O(log² n) nodes, never the leaves.
//!
//! Every function here works in two passes: `*_nodes` lists the nodes it needs (so a store
//! fetches them in one query), then the computation reads them from a [`Nodes`] map.
//!
//! Appending keeps the tree whole: each leaf that completes a perfect subtree adds that subtree's
//! node (one per leaf on average), from the old tree's right edge ([`frontier`]).

use std::collections::HashMap;

use tracex_core::audit::{Hash, node_hash};

/// A stored node: `(level, index)`.
pub type NodeId = (u32, u64);

/// Nodes fetched from a store.
pub type Nodes = HashMap<NodeId, Hash>;

/// A node the map lacks: the store is missing part of the tree.
#[derive(Debug, thiserror::Error)]
#[error("the audit log lacks node {0:?}")]
pub struct MissingNode(pub NodeId);

fn get(nodes: &Nodes, id: NodeId) -> Result<Hash, MissingNode> {
    nodes.get(&id).copied().ok_or(MissingNode(id))
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// The perfect subtrees that make up leaves `[start, end)` when `start` is a multiple of the
/// largest power of two below `end - start` (true of every range RFC 6962's recursion visits),
/// largest first.
fn decompose(start: u64, end: u64, out: &mut Vec<NodeId>) {
    let (mut a, b) = (start, end);
    while a < b {
        let n = b - a;
        let size = if n.is_power_of_two() { n } else { split(n) };
        debug_assert_eq!(a % size, 0, "range [{start}, {end}) is not RFC 6962-aligned");
        out.push((size.trailing_zeros(), a / size));
        a += size;
    }
}

/// The hash of leaves `[start, end)` (their Merkle tree hash) from perfect nodes: the nodes fold
/// right to left, `H(n1, H(n2, … H(nk-1, nk)))`, as RFC 6962 splits at the largest power of two.
fn range_hash(start: u64, end: u64, nodes: &Nodes) -> Result<Hash, MissingNode> {
    let mut ids = Vec::with_capacity(8);
    decompose(start, end, &mut ids);
    let (last, rest) = ids.split_last().ok_or(MissingNode((0, start)))?;
    let mut h = get(nodes, *last)?;
    for id in rest.iter().rev() {
        h = node_hash(&get(nodes, *id)?, &h);
    }
    Ok(h)
}

/// The nodes [`root`] reads for a tree of `size` leaves.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    decompose(0, size, &mut out);
    out
}

/// The root of the tree of `size` leaves (`size` ≥ 1).
pub fn root(size: u64, nodes: &Nodes) -> Result<Hash, MissingNode> {
    range_hash(0, size, nodes)
}

/// The ranges whose hashes make up the inclusion proof of leaf `index` in a tree of `size`
/// (RFC 6962 §2.1.1), deepest first.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut end) = (0, size);
    while end - start > 1 {
        let k = split(end - start);
        if index < start + k {
            out.push((start + k, end));
            end = start + k;
        } else {
            out.push((start, start + k));
            start += k;
        }
    }
    out.reverse();
    out
}

/// The ranges whose hashes make up the consistency proof from `old` to `new` leaves (RFC 6962
/// §2.1.2, 0 < old < new), in proof order.
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut end, mut m, mut whole) = (0, new, old, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                out.push((start, end));
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push((start + k, end));
            end = start + k;
        } else {
            out.push((start, start + k));
            start += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    out
}

fn nodes_of(ranges: &[(u64, u64)]) -> Vec<NodeId> {
    let mut out = Vec::new();
    for (a, b) in ranges {
        decompose(*a, *b, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn hashes_of(ranges: &[(u64, u64)], nodes: &Nodes) -> Result<Vec<Hash>, MissingNode> {
    ranges.iter().map(|(a, b)| range_hash(*a, *b, nodes)).collect()
}

/// The nodes [`inclusion`] reads (`index` < `size`).
pub fn inclusion_nodes(index: u64, size: u64) -> Vec<NodeId> {
    nodes_of(&inclusion_ranges(index, size))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion(index: u64, size: u64, nodes: &Nodes) -> Result<Vec<Hash>, MissingNode> {
    hashes_of(&inclusion_ranges(index, size), nodes)
}

/// The nodes [`consistency`] reads (`old` ≤ `new`).
pub fn consistency_nodes(old: u64, new: u64) -> Vec<NodeId> {
    if old == 0 || old == new { Vec::new() } else { nodes_of(&consistency_ranges(old, new)) }
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` (`old` ≤ `new`).
pub fn consistency(old: u64, new: u64, nodes: &Nodes) -> Result<Vec<Hash>, MissingNode> {
    if old == 0 || old == new { Ok(Vec::new()) } else { hashes_of(&consistency_ranges(old, new), nodes) }
}

/// The right edge of a tree of `size` leaves: the perfect nodes an append combines new leaves with.
pub fn frontier(size: u64) -> Vec<NodeId> {
    root_nodes(size)
}

/// Appends `leaves` (leaf hashes) to a tree of `size` leaves whose [`frontier`] nodes `nodes`
/// holds: every node to store, leaves (level 0) included, in order. `nodes` learns them too.
pub fn append(size: u64, leaves: &[Hash], nodes: &mut Nodes) -> Result<Vec<(NodeId, Hash)>, MissingNode> {
    let mut out = Vec::with_capacity(leaves.len() * 2);
    for (j, leaf) in (size..).zip(leaves) {
        nodes.insert((0, j), *leaf);
        out.push(((0, j), *leaf));
        let (mut level, mut index, mut h) = (0u32, j, *leaf);
        // Leaf j completes the node above it while it is a right child.
        while index & 1 == 1 {
            let left = get(nodes, (level, index - 1))?;
            h = node_hash(&left, &h);
            level += 1;
            index >>= 1;
            nodes.insert((level, index), h);
            out.push(((level, index), h));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use tracex_core::audit::merkle;

    use super::*;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    /// A tree of `n` leaves built by appends in uneven steps: every node it stored.
    fn build(n: u64) -> Nodes {
        let mut nodes = Nodes::new();
        let mut size = 0;
        let mut step = 1;
        while size < n {
            let take = step.min(n - size);
            let new: Vec<Hash> = (size..size + take).map(leaf).collect();
            // Only the frontier may be read.
            let mut edge: Nodes = frontier(size).into_iter().map(|id| (id, nodes[&id])).collect();
            for (id, h) in append(size, &new, &mut edge).unwrap() {
                assert!(nodes.insert(id, h).is_none(), "node {id:?} stored twice");
            }
            size += take;
            step = step % 5 + 1;
        }
        nodes
    }

    fn only(ids: Vec<NodeId>, all: &Nodes) -> Nodes {
        ids.into_iter().map(|id| (id, all[&id])).collect()
    }

    #[test]
    fn roots_and_proofs_match_the_reference_from_only_the_nodes_they_name() {
        for n in 1..=70u64 {
            let leaves: Vec<Hash> = (0..n).map(leaf).collect();
            let all = build(n);
            assert_eq!(all.len() as u64, 2 * n - u64::from(n.count_ones()), "perfect nodes of {n}");
            let root_n = root(n, &only(root_nodes(n), &all)).unwrap();
            assert_eq!(root_n, merkle::root(&leaves), "root of {n}");
            for i in 0..n {
                let proof = inclusion(i, n, &only(inclusion_nodes(i, n), &all)).unwrap();
                assert_eq!(proof, merkle::inclusion_proof(&leaves, i as usize), "inclusion {i} of {n}");
                merkle::verify_inclusion(&leaves[i as usize], i, n, &proof, &root_n).unwrap();
            }
            for m in 0..=n {
                let proof = consistency(m, n, &only(consistency_nodes(m, n), &all)).unwrap();
                assert_eq!(proof, merkle::consistency_proof(&leaves, m as usize), "consistency {m}..{n}");
            }
        }
    }

    #[test]
    fn a_proof_in_a_log_of_a_billion_leaves_reads_few_nodes() {
        let n = 1_000_000_007u64;
        let most = (0..n).step_by(9_999_991).map(|i| inclusion_nodes(i, n).len()).max().unwrap();
        assert!(most <= 30 * 30, "{most} nodes");
        assert!(inclusion_ranges(n - 1, n).len() <= 30);
        assert!(consistency_nodes(999_999_937, n).len() < 200);
    }

    #[test]
    fn a_missing_node_is_an_error_not_a_wrong_hash() {
        let all = build(5);
        let mut partial = only(root_nodes(5), &all);
        partial.remove(&(0, 4));
        assert!(matches!(root(5, &partial), Err(MissingNode((0, 4)))));
    }
}
