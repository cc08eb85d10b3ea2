//! What a leaf of the audit log commits to, in one canonical byte encoding (the leaf hash is RFC
//! 6962's `SHA-256(0x00 || encoding)`), and the per-span digests that let `audit verify` name the
//! exact span that was altered, deleted or inserted.
//!
//! A leaf holds the batch's identity (project, batch id, SDK instance and sequence number, the
//! envelope's SHA-256 as received, creation and receipt times) and `rows_sha256`: the SHA-256 of
//! the batch's [`Claims`] — one entry per span row the commit inserted, `(trace id, span id,
//! start, digest)`. The claims are stored beside the leaf (they are not needed to check the tree,
//! only to check the rows), and the leaf commits to them.

use sha2::{Digest, Sha256};
use tracex_core::audit::{Hash, leaf_hash};

/// Version byte of the leaf encoding.
const LEAF_V1: u8 = 1;

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
        out.push(LEAF_V1);
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
        if r.take(1)?[0] != LEAF_V1 {
            return Err(Malformed("unknown version"));
        }
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
    let h = Sha256::new()
        .chain_update(b"tracex span v1\0")
        .chain_update(trace_id)
        .chain_update(span_id)
        .chain_update(resource_sha256)
        .chain_update(body)
        .finalize();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&h[..DIGEST_LEN]);
    out
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

/// The spans one batch inserted, sorted by `(trace id, span id)`, encoded in groups per trace:
/// `trace id (16) · count (u32 BE)` then per span `span id (8) · start (u64 BE) · digest (16)`.
/// 32 bytes a span and 20 a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims(pub Vec<Claim>);

impl Claims {
    /// The canonical encoding (sorts first).
    pub fn encode(&mut self) -> Vec<u8> {
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

    /// Parses [`Claims::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader(b);
        let mut out = Vec::with_capacity(b.len() / 32);
        while !r.0.is_empty() {
            let trace_id: [u8; 16] = r.array()?;
            let n = u32::from_be_bytes(r.array()?);
            for _ in 0..n {
                out.push(Claim {
                    trace_id,
                    span_id: r.array()?,
                    start_unix_nano: u64::from_be_bytes(r.array()?),
                    digest: r.array()?,
                });
            }
        }
        Ok(Self(out))
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
    fn claims_sort_group_and_round_trip() {
        let c =
            |t: u8, s: u8| Claim { trace_id: [t; 16], span_id: [s; 8], start_unix_nano: u64::from(s), digest: [s; 16] };
        let mut claims = Claims(vec![c(2, 1), c(1, 3), c(1, 2)]);
        let enc = claims.encode();
        assert_eq!(enc.len(), 2 * 20 + 3 * 32);
        assert_eq!(claims.0, vec![c(1, 2), c(1, 3), c(2, 1)]);
        assert_eq!(Claims::decode(&enc).unwrap(), claims);
        assert!(Claims::decode(&enc[..enc.len() - 3]).is_err());
        assert_ne!(rows_sha256(&enc), rows_sha256(&enc[..enc.len() - 32]));
    }
}
