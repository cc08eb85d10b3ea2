//! Clear-text OTLP (`POST /v1/traces`): what the sealed path's unsealer does, for a request that
//! arrives in the clear. The body is inflated within a limit (`Content-Encoding: gzip`), decoded
//! (protobuf with the core's decoder, JSON with [`super::otlp_json`]) within the decode limits,
//! redacted with the rules the SDKs apply before sealing (`tracex_core::redact`, the SDKs'
//! defaults), and the spans that fail validation are taken out and counted: OTLP answers them with
//! a partial success instead of refusing the request.
//!
//! OTLP requests carry no batch id. Their identity for the writer's batch idempotency is the
//! SHA-256 of the decoded body (with its format), so an exporter retrying the same bytes gets a
//! duplicate (nothing written twice, at the cost of one index lookup); a retry that batches the
//! same spans differently is still stored once, because spans are unique by (project, trace id,
//! span id) in both stores.

use std::io::Read as _;

use sha2::{Digest, Sha256};
use tracex_core::decode::DecodeLimits;
use tracex_core::redact::Redactor;
use tracex_core::{Error as CoreError, TraceRequest};

use super::otlp_json::{self, JsonError};
use super::unseal::OpenError;
use super::validate::{self, Rejected};

/// The body's encoding, from `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf` (also `application/protobuf`).
    Protobuf,
    /// `application/json`.
    Json,
}

impl Format {
    /// The format a `Content-Type` names (parameters such as `charset` are ignored).
    pub fn from_content_type(value: Option<&str>) -> Result<Self, OpenError> {
        let media = value.and_then(|v| v.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/x-protobuf" | "application/protobuf") => Ok(Self::Protobuf),
            Some("application/json") => Ok(Self::Json),
            _ => {
                Err(OpenError::MediaType("OTLP/HTTP bodies are application/x-protobuf or application/json".to_owned()))
            }
        }
    }

    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// The body's `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// None.
    Identity,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
}

impl Encoding {
    /// The encoding a `Content-Encoding` names.
    pub fn from_header(value: Option<&str>) -> Result<Self, OpenError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "identity") => Ok(Self::Identity),
            Some("gzip" | "x-gzip") => Ok(Self::Gzip),
            Some(_) => Err(OpenError::MediaType("the Content-Encoding of OTLP/HTTP bodies is gzip or none".to_owned())),
        }
    }
}

/// A decoded, redacted clear-text request with its invalid spans taken out.
#[derive(Debug)]
pub struct Opened {
    /// The spans to store.
    pub request: TraceRequest,
    /// Estimated memory of the decoded request (for the ingest memory budget).
    pub decoded_bytes: usize,
    /// The spans taken out because they failed validation.
    pub rejected: Rejected,
    /// Values the redaction rules masked or removed.
    pub redacted: u32,
    /// SHA-256 of the format and the decoded body: the request's identity.
    pub digest: [u8; 32],
}

/// Inflates, decodes, redacts and validates one request. CPU-bound: call from a blocking thread.
pub fn open(
    body: &[u8],
    format: Format,
    encoding: Encoding,
    max_plaintext: usize,
    limits: &DecodeLimits,
    redactor: &Redactor,
    now_unix_nano: u64,
) -> Result<Opened, OpenError> {
    let inflated;
    let plain = match encoding {
        Encoding::Identity => body,
        Encoding::Gzip => {
            inflated = gunzip(body, max_plaintext)?;
            &inflated[..]
        }
    };
    let mut hash = Sha256::new();
    hash.update(match format {
        Format::Protobuf => b"otlp-protobuf\0" as &[u8],
        Format::Json => b"otlp-json\0",
    });
    hash.update(plain);
    let digest = hash.finalize().into();
    let (mut request, usage) = match format {
        Format::Protobuf => tracex_core::decode::decode_request_within(plain, limits).map_err(|e| match e {
            CoreError::LimitExceeded(m) => OpenError::Limit(m),
            other => OpenError::Payload(other.to_string().trim_start_matches("malformed OTLP payload: ").to_owned()),
        })?,
        Format::Json => otlp_json::decode_request_within(plain, limits).map_err(|e| match e {
            JsonError::Limit(m) => OpenError::Limit(m),
            JsonError::Malformed(m) => OpenError::Payload(m),
        })?,
    };
    let redacted = redactor.redact_request(&mut request);
    let rejected = validate::retain_valid(&mut request, now_unix_nano);
    Ok(Opened { request, decoded_bytes: usage.bytes, rejected, redacted, digest })
}

/// Inflates a gzip body, stopping at `limit` bytes of output.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, OpenError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(u64::try_from(limit).unwrap_or(u64::MAX) + 1);
    reader.read_to_end(&mut out).map_err(|e| OpenError::Compression(format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(OpenError::Limit(format!("the body inflates to more than {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(Format::from_content_type(Some("application/x-protobuf")), Ok(Format::Protobuf));
        assert_eq!(Format::from_content_type(Some("Application/JSON; charset=utf-8")), Ok(Format::Json));
        assert!(Format::from_content_type(Some("text/plain")).is_err());
        assert!(Format::from_content_type(None).is_err());
        assert_eq!(Encoding::from_header(None), Ok(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("GZIP")), Ok(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")).unwrap_err().code(), "unsupported_media_type");
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        let json = br#"{"resourceSpans":[]}"#;
        let r = Redactor::default();
        let opened = open(&gzip(json), Format::Json, Encoding::Gzip, 1024, &DecodeLimits::NONE, &r, 0).unwrap();
        assert_eq!(opened.request.span_count(), 0);
        let plain = open(json, Format::Json, Encoding::Identity, 1024, &DecodeLimits::NONE, &r, 0).unwrap();
        assert_eq!(opened.digest, plain.digest, "the identity is the decoded body's");
        let bomb = gzip(&vec![b' '; 1 << 20]);
        let err = open(&bomb, Format::Json, Encoding::Gzip, 1024, &DecodeLimits::NONE, &r, 0).unwrap_err();
        assert_eq!(err.code(), "limit_exceeded");
        let err = open(b"not gzip", Format::Json, Encoding::Gzip, 1024, &DecodeLimits::NONE, &r, 0).unwrap_err();
        assert_eq!(err.code(), "malformed_compression");
    }
}
