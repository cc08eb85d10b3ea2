//! What a leaf of the audit log commits to, in one canonical byte encoding (the leaf hash is RFC
//! 6962's `SHA-256(0x00 || encoding)`), and the per-span digests that let `audit verify` name the
//! exact span that was altered, deleted or inserted.
//!
//! A leaf holds the batch's identity (project, batch id, SDK instance and sequence number, the
//! envelope's SHA-256 as received, creation and receipt times) and `rows_sha256`: the SHA-256 of
//! the batch's [`Claims`] — what the commit inserted, per span row. The claims are stored beside
//! the leaf (they are not needed to check the tree, only to check the rows), and the leaf commits
//! to them.
//!
//! Two claim formats, named by the leaf's version byte. Version 1 stored per span `(span id,
//! start, 16-byte digest)`: 32 bytes a span, which made the log cost the single writer about a
//! tenth of its throughput (its bytes grew 13 %; docs/benchmarks.md). Version 2, written since,
//! stores per trace group a 16-byte digest over the group's span ids and row digests, its count
//! and its latest start, and per span its id and a 4-byte tag (the digest's first bytes): 12 bytes
//! a span. Detection stays at 128 bits — a changed row changes its group's digest — and the tags
//! name the span; one who grinds 2^32 variants of a row to keep its tag only hides which span of
//! the group changed, not that one did. Leaves of both versions verify.

use sha2::{Digest, Sha256};
use tracex_core::audit::{Hash, leaf_hash};

/// Version byte of the leaf encoding with claims of [`ClaimsFormat::V1`].
const LEAF_V1: u8 = 1;
/// Version byte of the leaf encoding with claims of [`ClaimsFormat::V2`] (the same fields).
const LEAF_V2: u8 = 2;

/// Bytes of a span's tag in [`ClaimsFormat::V2`] claims.
pub const TAG_LEN: usize = 4;

/// How a leaf's claims are encoded (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimsFormat {
    /// A 16-byte digest and the start of every span.
    V1,
    /// A digest, count and latest start per trace group; a 4-byte tag per span.
    V2,
}

/// Bytes of a span digest: a truncated SHA-256. Altering a row undetected needs a second preimage
/// of 128 bits.
pub const DIGEST_LEN: usize = 16;

/// A span row's digest.
pub type SpanDigest = [u8; DIGEST_LEN];

/// How a batch reached the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A sealed envelope from a tracex SDK.
    Sealed = 0,
    /// OTLP in clear text: `envelope_sha256` is the request's identity, the SHA-256 of its format
    /// tag and inflated body (`services::otlp::Opened::digest`).
    Otlp = 1,
}

/// One leaf: a stored batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Project name.
    pub project: String,
    /// Batch id (idempotency key within the project).
    pub batch_id: [u8; 16],
    /// SDK instance (zero for OTLP).
    pub instance_id: [u8; 8],
    /// Sequence number within the instance (zero for OTLP).
    pub sequence: u64,
    /// When the SDK sealed it (unix ns; the receipt time for OTLP).
    pub created_at_unix_nano: u64,
    /// When the collector received it (unix ns).
    pub received_at_unix_nano: u64,
    /// SHA-256 of the envelope (or OTLP body) as received.
    pub envelope_sha256: [u8; 32],
    /// Sealed or OTLP.
    pub origin: Origin,
    /// Span rows the commit inserted.
    pub spans: u32,
    /// SHA-256 of the batch's [`Claims`] encoding.
    pub rows_sha256: [u8; 32],
    /// How the claims are encoded (the version byte).
    pub claims_format: ClaimsFormat,
}

/// A leaf encoding that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("malformed audit leaf: {0}")]
pub struct Malformed(&'static str);

impl Leaf {
    /// The canonical encoding: version, then the fields in declaration order — the project as a
    /// 16-bit big-endian length and UTF-8, integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let p = self.project.as_bytes();
        let mut out = Vec::with_capacity(1 + 2 + p.len() + 16 + 8 + 8 * 3 + 32 + 1 + 4 + 32);
        out.push(match self.claims_format {
            ClaimsFormat::V1 => LEAF_V1,
            ClaimsFormat::V2 => LEAF_V2,
        });
        // Project names are short (checked where keys are made); a longer one is cut, not wrapped.
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&p[..usize::from(len)]);
        out.extend_from_slice(&self.batch_id);
        out.extend_from_slice(&self.instance_id);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.created_at_unix_nano.to_be_bytes());
        out.extend_from_slice(&self.received_at_unix_nano.to_be_bytes());
        out.extend_from_slice(&self.envelope_sha256);
        out.push(self.origin as u8);
        out.extend_from_slice(&self.spans.to_be_bytes());
        out.extend_from_slice(&self.rows_sha256);
        out
    }

    /// Parses [`Leaf::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader(b);
        let claims_format = match r.take(1)?[0] {
            LEAF_V1 => ClaimsFormat::V1,
            LEAF_V2 => ClaimsFormat::V2,
            _ => return Err(Malformed("unknown version")),
        };
        let len = usize::from(u16::from_be_bytes(r.array()?));
        let project = std::str::from_utf8(r.take(len)?).map_err(|_| Malformed("project is not UTF-8"))?.to_owned();
        let leaf = Self {
            project,
            batch_id: r.array()?,
            instance_id: r.array()?,
            sequence: u64::from_be_bytes(r.array()?),
            created_at_unix_nano: u64::from_be_bytes(r.array()?),
            received_at_unix_nano: u64::from_be_bytes(r.array()?),
            envelope_sha256: r.array()?,
            origin: match r.take(1)?[0] {
                0 => Origin::Sealed,
                1 => Origin::Otlp,
                _ => return Err(Malformed("unknown origin")),
            },
            spans: u32::from_be_bytes(r.array()?),
            rows_sha256: r.array()?,
            claims_format,
        };
        if !r.0.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        Ok(leaf)
    }

    /// The leaf hash of the encoding.
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// The digest of a span row as stored: its trace and span ids, the SHA-256 of its resource and
/// scope row, and its body (every field and attribute; the other columns are derived from it and
/// checked against it).
pub fn span_digest(trace_id: &[u8; 16], span_id: &[u8; 8], resource_sha256: &[u8; 32], body: &[u8]) -> SpanDigest {
    let mut h = Sha256::new();
    for part in span_digest_parts(trace_id, span_id, resource_sha256, body) {
        h.update(part);
    }
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&h.finalize()[..DIGEST_LEN]);
    out
}

/// [`span_digest`] of each row in turn, in order: the same digests, several hashed at once
/// ([`super::sha256_lanes`]).
pub fn span_digests<'a>(
    rows: impl IntoIterator<Item = (&'a [u8; 16], &'a [u8; 8], &'a [u8; 32], &'a [u8])>,
    mut each: impl FnMut(SpanDigest),
) {
    let messages = rows.into_iter().map(|(t, s, r, b)| span_digest_parts(t, s, r, b));
    super::sha256_lanes::each(messages, |h| {
        let mut out = [0u8; DIGEST_LEN];
        out.copy_from_slice(&h[..DIGEST_LEN]);
        each(out);
    });
}

/// What a span digest hashes, in order.
fn span_digest_parts<'a>(
    trace_id: &'a [u8; 16],
    span_id: &'a [u8; 8],
    resource_sha256: &'a [u8; 32],
    body: &'a [u8],
) -> [&'a [u8]; 5] {
    [b"tracex span v1\0", trace_id, span_id, resource_sha256, body]
}

/// One span a batch inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    /// Its trace.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// Its start (unix ns): tells a span that retention removed from one that was deleted.
    pub start_unix_nano: u64,
    /// Its row's digest.
    pub digest: SpanDigest,
}

/// The spans one batch inserted, as the commit knows them (full digests), sorted by
/// `(trace id, span id)` when encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims(pub Vec<Claim>);

/// What a stored claim lets `audit verify` check of its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The row's whole digest ([`ClaimsFormat::V1`]).
    Digest(SpanDigest),
    /// The first [`TAG_LEN`] bytes of the row's digest, the group's digest covering the rest
    /// ([`ClaimsFormat::V2`]).
    Tag([u8; TAG_LEN]),
}

impl Check {
    /// Whether a row with digest `d` passes.
    pub fn passes(&self, d: &SpanDigest) -> bool {
        match self {
            Self::Digest(want) => want == d,
            Self::Tag(tag) => d[..TAG_LEN] == tag[..],
        }
    }
}

/// One claimed span as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredClaim {
    /// Its trace.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// Its start (V1), or the latest start of its trace group (V2): at or after its own.
    pub start_unix_nano: u64,
    /// What its row must match.
    pub check: Check,
}

/// A trace group's digest ([`ClaimsFormat::V2`]): over `spans[first..first + len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCheck {
    /// Its first span in [`StoredClaims::spans`].
    pub first: usize,
    /// Its spans.
    pub len: usize,
    /// [`group_digest`] of its spans' ids and row digests.
    pub digest: SpanDigest,
}

/// A leaf's claims as stored, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredClaims {
    /// Every claimed span, in encoding order.
    pub spans: Vec<StoredClaim>,
    /// The trace groups' digests (empty for V1).
    pub groups: Vec<GroupCheck>,
}

impl StoredClaims {
    /// The `(trace id, span id)` of every claimed span, in order.
    pub fn keys(&self) -> Vec<([u8; 16], [u8; 8])> {
        self.spans.iter().map(|c| (c.trace_id, c.span_id)).collect()
    }
}

/// The digest of a trace group's rows ([`ClaimsFormat::V2`]): its span ids and row digests, in
/// span id order.
pub fn group_digest<'a>(rows: impl IntoIterator<Item = (&'a [u8; 8], &'a SpanDigest)>) -> SpanDigest {
    let mut h = Sha256::new();
    group_message(rows, |part| h.update(part));
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&h.finalize()[..DIGEST_LEN]);
    out
}

/// Hands what [`group_digest`] hashes to `put`, part by part.
fn group_message<'a>(rows: impl IntoIterator<Item = (&'a [u8; 8], &'a SpanDigest)>, mut put: impl FnMut(&[u8])) {
    put(b"tracex claims v2 group\0");
    for (span_id, digest) in rows {
        put(span_id);
        put(digest);
    }
}

impl Claims {
    /// The format [`Claims::encode`] writes.
    pub const FORMAT: ClaimsFormat = ClaimsFormat::V2;

    /// The canonical encoding, [`ClaimsFormat::V2`] (sorts first), in groups per trace:
    /// `trace id (16) · count (u32 BE) · latest start (u64 BE) · group digest (16)` then per span
    /// `span id (8) · tag (4)`. 12 bytes a span and 44 a trace.
    pub fn encode(&mut self) -> Vec<u8> {
        self.0.sort_unstable();
        let groups = || self.0.chunk_by(|a, b| a.trace_id == b.trace_id);
        // The groups' digests first, four at a time (`sha256_lanes`; with one-span traces there is
        // one a span): their messages laid end to end in one buffer.
        let (mut messages, mut ends) = (Vec::with_capacity(self.0.len() * 24 + 32), Vec::new());
        for group in groups() {
            group_message(group.iter().map(|c| (&c.span_id, &c.digest)), |part| messages.extend_from_slice(part));
            ends.push(messages.len());
        }
        let mut digests = Vec::with_capacity(ends.len());
        let slices = ends.iter().scan(0, |start, &end| {
            let message = &messages[*start..end];
            *start = end;
            Some([message])
        });
        super::sha256_lanes::each(slices, |h| {
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(&h[..DIGEST_LEN]);
            digests.push(d);
        });
        let mut out = Vec::with_capacity(self.0.len() * (8 + TAG_LEN) + 44);
        for (group, digest) in groups().zip(&digests) {
            out.extend_from_slice(&group[0].trace_id);
            out.extend_from_slice(&u32::try_from(group.len()).unwrap_or(u32::MAX).to_be_bytes());
            let latest = group.iter().map(|c| c.start_unix_nano).max().unwrap_or(0);
            out.extend_from_slice(&latest.to_be_bytes());
            out.extend_from_slice(digest);
            for c in group {
                out.extend_from_slice(&c.span_id);
                out.extend_from_slice(&c.digest[..TAG_LEN]);
            }
        }
        out
    }

    /// The [`ClaimsFormat::V1`] encoding (sorts first): per trace `trace id (16) · count (u32 BE)`
    /// then per span `span id (8) · start (u64 BE) · digest (16)`. Leaves written before V2 hold it.
    pub fn encode_v1(&mut self) -> Vec<u8> {
        self.0.sort_unstable();
        let mut out = Vec::with_capacity(self.0.len() * 32 + 20);
        for group in self.0.chunk_by(|a, b| a.trace_id == b.trace_id) {
            out.extend_from_slice(&group[0].trace_id);
            out.extend_from_slice(&u32::try_from(group.len()).unwrap_or(u32::MAX).to_be_bytes());
            for c in group {
                out.extend_from_slice(&c.span_id);
                out.extend_from_slice(&c.start_unix_nano.to_be_bytes());
                out.extend_from_slice(&c.digest);
            }
        }
        out
    }

    /// Parses an encoding of `format`.
    pub fn decode(b: &[u8], format: ClaimsFormat) -> Result<StoredClaims, Malformed> {
        let mut r = Reader(b);
        let per_span = match format {
            ClaimsFormat::V1 => 32,
            ClaimsFormat::V2 => 8 + TAG_LEN,
        };
        let mut out = StoredClaims { spans: Vec::with_capacity(b.len() / per_span), groups: Vec::new() };
        while !r.0.is_empty() {
            let trace_id: [u8; 16] = r.array()?;
            let n = u32::from_be_bytes(r.array()?) as usize;
            if r.0.len() < n.saturating_mul(per_span) {
                return Err(Malformed("truncated"));
            }
            match format {
                ClaimsFormat::V1 => {
                    for _ in 0..n {
                        out.spans.push(StoredClaim {
                            trace_id,
                            span_id: r.array()?,
                            start_unix_nano: u64::from_be_bytes(r.array()?),
                            check: Check::Digest(r.array()?),
                        });
                    }
                }
                ClaimsFormat::V2 => {
                    let latest = u64::from_be_bytes(r.array()?);
                    let digest: SpanDigest = r.array()?;
                    out.groups.push(GroupCheck { first: out.spans.len(), len: n, digest });
                    for _ in 0..n {
                        out.spans.push(StoredClaim {
                            trace_id,
                            span_id: r.array()?,
                            start_unix_nano: latest,
                            check: Check::Tag(r.array()?),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `rows_sha256` of an encoded claims list.
pub fn rows_sha256(claims_encoding: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(b"tracex rows v1\0").chain_update(claims_encoding).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf() -> Leaf {
        Leaf {
            project: "payments".into(),
            batch_id: [1; 16],
            instance_id: [2; 8],
            sequence: 7,
            created_at_unix_nano: 1_700_000_000_000_000_000,
            received_at_unix_nano: 1_700_000_000_500_000_000,
            envelope_sha256: [3; 32],
            origin: Origin::Sealed,
            spans: 12,
            rows_sha256: [4; 32],
            claims_format: ClaimsFormat::V2,
        }
    }

    #[test]
    fn leaves_round_trip_and_every_field_changes_the_hash() {
        let l = leaf();
        let enc = l.encode();
        assert_eq!(Leaf::decode(&enc).unwrap(), l);
        let mut variants = vec![l.hash()];
        let mut v = l.clone();
        v.project.push('x');
        variants.push(v.hash());
        let mut v = l.clone();
        v.sequence += 1;
        variants.push(v.hash());
        let mut v = l.clone();
        v.origin = Origin::Otlp;
        variants.push(v.hash());
        let mut v = l.clone();
        v.rows_sha256[31] ^= 1;
        variants.push(v.hash());
        let mut v = l.clone();
        v.received_at_unix_nano += 1;
        variants.push(v.hash());
        let mut v = l.clone();
        v.claims_format = ClaimsFormat::V1;
        assert_eq!(Leaf::decode(&v.encode()).unwrap(), v);
        variants.push(v.hash());
        let n = variants.len();
        variants.sort_unstable();
        variants.dedup();
        assert_eq!(variants.len(), n);
        assert!(Leaf::decode(&enc[..enc.len() - 1]).is_err());
        let mut long = enc.clone();
        long.push(0);
        assert!(Leaf::decode(&long).is_err());
    }

    #[test]
    fn claims_sort_group_and_round_trip_in_both_formats() {
        let c = |t: u8, s: u8| Claim {
            trace_id: [t; 16],
            span_id: [s; 8],
            start_unix_nano: u64::from(s),
            digest: [s.wrapping_mul(7); 16],
        };
        let mut claims = Claims(vec![c(2, 1), c(1, 3), c(1, 2)]);
        let sorted = vec![c(1, 2), c(1, 3), c(2, 1)];

        let v1 = claims.encode_v1();
        assert_eq!(v1.len(), 2 * 20 + 3 * 32);
        assert_eq!(claims.0, sorted);
        let stored = Claims::decode(&v1, ClaimsFormat::V1).unwrap();
        assert!(stored.groups.is_empty());
        for (got, want) in stored.spans.iter().zip(&sorted) {
            assert_eq!(
                (got.trace_id, got.span_id, got.start_unix_nano),
                (want.trace_id, want.span_id, want.start_unix_nano)
            );
            assert_eq!(got.check, Check::Digest(want.digest));
        }
        assert!(Claims::decode(&v1[..v1.len() - 3], ClaimsFormat::V1).is_err());
        assert_ne!(rows_sha256(&v1), rows_sha256(&v1[..v1.len() - 32]));

        let v2 = claims.encode();
        assert_eq!(v2.len(), 2 * 44 + 3 * 12, "12 bytes a span, 44 a trace");
        let stored = Claims::decode(&v2, ClaimsFormat::V2).unwrap();
        assert_eq!(stored.keys(), sorted.iter().map(|c| (c.trace_id, c.span_id)).collect::<Vec<_>>());
        // The latest start of the group stands for each span's; the tag is the digest's head.
        assert_eq!(stored.spans.iter().map(|c| c.start_unix_nano).collect::<Vec<_>>(), [3, 3, 1]);
        for (got, want) in stored.spans.iter().zip(&sorted) {
            assert!(got.check.passes(&want.digest));
            let mut other = want.digest;
            other[0] ^= 1;
            assert!(!got.check.passes(&other));
        }
        assert_eq!(
            stored.groups,
            [
                GroupCheck {
                    first: 0,
                    len: 2,
                    digest: group_digest(sorted[..2].iter().map(|c| (&c.span_id, &c.digest)))
                },
                GroupCheck { first: 2, len: 1, digest: group_digest([(&sorted[2].span_id, &sorted[2].digest)]) },
            ]
        );
        // A digest's tail is covered by the group digest, and a span id by both.
        let mut tail = sorted[0].digest;
        tail[15] ^= 1;
        assert_ne!(
            group_digest([(&sorted[0].span_id, &tail), (&sorted[1].span_id, &sorted[1].digest)]),
            stored.groups[0].digest
        );
        assert!(Claims::decode(&v2[..v2.len() - 3], ClaimsFormat::V2).is_err());
    }
}
