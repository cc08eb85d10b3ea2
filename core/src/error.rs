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
        }
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            Error::Config(String::new()),
            Error::PublicKey(String::new()),
            Error::FingerprintMismatch { expected: String::new(), actual: String::new() },
            Error::InvalidContext(String::new()),
            Error::MalformedEnvelope(String::new()),
            Error::UnsupportedVersion(9),
            Error::Open,
            Error::Decode(String::new()),
            Error::Seal(String::new()),
            Error::Random(String::new()),
            Error::Transport(String::new()),
            Error::Rejected { status: 400, message: String::new() },
            Error::Shutdown,
            Error::Timeout(Duration::from_secs(1)),
            Error::LimitExceeded(String::new()),
            Error::InvalidRecords(String::new()),
            Error::Spool(std::io::Error::other("x")),
        ];
        let mut codes: Vec<_> = all.iter().map(Error::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|c| c.starts_with("TRACEX_")));
    }
}
