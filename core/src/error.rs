//! The core's one error enum. Every variant has a stable machine-readable [`Error::code`] that the
//! bindings surface (`err.code` in JS, the exception class in Python).

use std::time::Duration;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The collector public key could not be parsed.
    #[error("invalid collector public key: {0}")]
    PublicKey(String),
    /// The collector public key does not match the pinned fingerprint.
    #[error("collector public key fingerprint mismatch: pinned {expected}, got {actual}")]
    FingerprintMismatch {
        /// The pinned fingerprint (hex).
        expected: String,
        /// The fingerprint of the key that was offered (hex).
        actual: String,
    },
    /// A `traceparent`, id or other trace-context value is malformed.
    #[error("invalid trace context: {0}")]
    InvalidContext(String),
    /// Sealed bytes are not a well-formed envelope.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The envelope is of a format version this build cannot read.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// AES-GCM authentication failed: wrong data key, or the bytes were tampered with.
    #[error("batch authentication failed: wrong key or tampered bytes")]
    Open,
    /// The plaintext is not a valid OTLP `ExportTraceServiceRequest`.
    #[error("malformed OTLP payload: {0}")]
    Decode(String),
    /// A cryptographic operation failed while sealing (RSA wrap, AES-GCM).
    #[error("sealing failed: {0}")]
    Seal(String),
    /// The randomness source failed.
    #[error("randomness unavailable: {0}")]
    Random(String),
    /// Sending a batch failed for good.
    #[error("transport: {0}")]
    Transport(String),
    /// The collector rejected a batch with a non-retryable status.
    #[error("collector rejected the batch: HTTP {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The collector's error message (or body).
        message: String,
    },
    /// The tracer has been shut down.
    #[error("tracer is shut down")]
    Shutdown,
    /// `flush` or `shutdown` did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Decoding stopped at a limit (span count, items, decoded size) before spending the memory.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// A span record buffer from a host package is malformed (a bug in the package's encoder).
    #[error("invalid span record buffer: {0}")]
    InvalidRecords(String),
    /// The on-disk spool could not be read or written (e.g. disk full).
    #[error("spool: {0}")]
    Spool(#[source] std::io::Error),
    /// An audit proof, checkpoint, receipt or verifier key did not verify or is malformed.
    #[error("audit verification failed: {0}")]
    Audit(String),
}

impl Error {
    /// A stable, machine-readable code for this error (`TRACEX_*`), the same in every binding.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "TRACEX_CONFIG",
            Self::PublicKey(_) => "TRACEX_PUBLIC_KEY",
            Self::FingerprintMismatch { .. } => "TRACEX_FINGERPRINT_MISMATCH",
            Self::InvalidContext(_) => "TRACEX_INVALID_CONTEXT",
            Self::MalformedEnvelope(_) => "TRACEX_MALFORMED_ENVELOPE",
            Self::UnsupportedVersion(_) => "TRACEX_UNSUPPORTED_VERSION",
            Self::Open => "TRACEX_OPEN_FAILED",
            Self::Decode(_) => "TRACEX_DECODE",
            Self::Seal(_) => "TRACEX_SEAL",
            Self::Random(_) => "TRACEX_RANDOM",
            Self::Transport(_) => "TRACEX_TRANSPORT",
            Self::Rejected { .. } => "TRACEX_REJECTED",
            Self::Shutdown => "TRACEX_SHUTDOWN",
            Self::Timeout(_) => "TRACEX_TIMEOUT",
            Self::LimitExceeded(_) => "TRACEX_LIMIT_EXCEEDED",
            Self::InvalidRecords(_) => "TRACEX_INVALID_RECORDS",
            Self::Spool(_) => "TRACEX_SPOOL",
            Self::Audit(_) => "TRACEX_AUDIT",
        }
    }
}

impl Error {
    /// The family this error belongs to: what a caller can act on. Every binding raises one class
    /// per kind, named [`ErrorKind::class_name`] in every language.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Config,
            Self::PublicKey(_) => ErrorKind::PublicKey,
            Self::FingerprintMismatch { .. } => ErrorKind::FingerprintMismatch,
            Self::InvalidContext(_) => ErrorKind::InvalidContext,
            Self::MalformedEnvelope(_)
            | Self::UnsupportedVersion(_)
            | Self::Open
            | Self::Decode(_)
            | Self::LimitExceeded(_) => ErrorKind::Envelope,
            Self::Seal(_) | Self::Random(_) => ErrorKind::Seal,
            Self::Transport(_) => ErrorKind::Transport,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::Shutdown => ErrorKind::Shutdown,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::InvalidRecords(_) => ErrorKind::InvalidRecords,
            Self::Spool(_) => ErrorKind::Spool,
            Self::Audit(_) => ErrorKind::Audit,
        }
    }

    /// One error of each variant (in declaration order), for tests that pin every binding's mapping
    /// (`tests/vectors/errors.json`).
    #[cfg(any(test, feature = "testing"))]
    pub fn one_of_each() -> Vec<Self> {
        vec![
            Self::Config("example".into()),
            Self::PublicKey("example".into()),
            Self::FingerprintMismatch { expected: "00".repeat(32), actual: "ff".repeat(32) },
            Self::InvalidContext("example".into()),
            Self::MalformedEnvelope("example".into()),
            Self::UnsupportedVersion(9),
            Self::Open,
            Self::Decode("example".into()),
            Self::Seal("example".into()),
            Self::Random("example".into()),
            Self::Transport("example".into()),
            Self::Rejected { status: 400, message: "example".into() },
            Self::Shutdown,
            Self::Timeout(Duration::from_secs(1)),
            Self::LimitExceeded("example".into()),
            Self::InvalidRecords("example".into()),
            Self::Spool(std::io::Error::other("example")),
            Self::Audit("example".into()),
        ]
    }
}

/// The families of [`Error`]. Bindings map kinds, not variants, to their exception classes, and
/// every binding uses the same class name for a kind ([`ErrorKind::class_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Invalid options or environment.
    Config,
    /// The collector public key is invalid.
    PublicKey,
    /// The collector public key does not match the pinned fingerprint.
    FingerprintMismatch,
    /// A malformed `traceparent` or id.
    InvalidContext,
    /// Sealed bytes that are malformed, of an unknown version, tampered with, or not OTLP.
    Envelope,
    /// Sealing failed, or no randomness was available.
    Seal,
    /// The collector could not be reached.
    Transport,
    /// The collector rejected a batch for good.
    Rejected,
    /// The tracer has been shut down.
    Shutdown,
    /// A flush or shutdown did not finish in time.
    Timeout,
    /// A host package wrote a malformed span record buffer.
    InvalidRecords,
    /// The on-disk spool could not be read or written.
    Spool,
    /// An audit proof, checkpoint or receipt did not verify.
    Audit,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [Self; 13] = [
        Self::Config,
        Self::PublicKey,
        Self::FingerprintMismatch,
        Self::InvalidContext,
        Self::Envelope,
        Self::Seal,
        Self::Transport,
        Self::Rejected,
        Self::Shutdown,
        Self::Timeout,
        Self::InvalidRecords,
        Self::Spool,
        Self::Audit,
    ];

    /// The exception class for this kind, the same name in JS and Python (`err.kind` in JS).
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Config => "ConfigError",
            Self::PublicKey => "PublicKeyError",
            Self::FingerprintMismatch => "FingerprintMismatchError",
            Self::InvalidContext => "InvalidContextError",
            Self::Envelope => "EnvelopeError",
            Self::Seal => "SealError",
            Self::Transport => "TransportError",
            Self::Rejected => "RejectedError",
            Self::Shutdown => "ShutdownError",
            Self::Timeout => "FlushTimeoutError",
            Self::InvalidRecords => "InvalidRecordsError",
            Self::Spool => "SpoolError",
            Self::Audit => "AuditError",
        }
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of `e` in [`Error::one_of_each`]; no `_` arm, so a new variant fails to
    /// compile here until it is added there.
    fn variant_index(e: &Error) -> usize {
        match e {
            Error::Config(_) => 0,
            Error::PublicKey(_) => 1,
            Error::FingerprintMismatch { .. } => 2,
            Error::InvalidContext(_) => 3,
            Error::MalformedEnvelope(_) => 4,
            Error::UnsupportedVersion(_) => 5,
            Error::Open => 6,
            Error::Decode(_) => 7,
            Error::Seal(_) => 8,
            Error::Random(_) => 9,
            Error::Transport(_) => 10,
            Error::Rejected { .. } => 11,
            Error::Shutdown => 12,
            Error::Timeout(_) => 13,
            Error::LimitExceeded(_) => 14,
            Error::InvalidRecords(_) => 15,
            Error::Spool(_) => 16,
            Error::Audit(_) => 17,
        }
    }

    #[test]
    fn one_of_each_covers_every_variant_in_order() {
        let all = Error::one_of_each();
        let idx: Vec<_> = all.iter().map(variant_index).collect();
        assert_eq!(idx, (0..18).collect::<Vec<_>>());
    }

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = Error::one_of_each();
        let mut codes: Vec<_> = all.iter().map(Error::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|c| c.starts_with("TRACEX_")));
    }

    #[test]
    fn every_kind_is_used_and_class_names_are_distinct() {
        let all = Error::one_of_each();
        for kind in ErrorKind::ALL {
            assert!(all.iter().any(|e| e.kind() == kind), "{kind:?} has no variant");
        }
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.class_name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
