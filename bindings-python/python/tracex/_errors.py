"""The exceptions tracex raises. Each subclass also inherits the builtin it resembles, so existing
``except ValueError`` / ``except ConnectionError`` code keeps working, and each instance carries the
core's stable ``code`` (``TRACEX_*``), the same in every tracex SDK. There is one class per kind of
core error, with the same name as in the JS packages (``tests/vectors/errors.json``).

Kept in pure Python (no import of the native module) so the native module can load it lazily.
"""

from __future__ import annotations

import builtins

__all__ = [
    "TracexError",
    "ConfigError",
    "PublicKeyError",
    "FingerprintMismatchError",
    "InvalidContextError",
    "EnvelopeError",
    "SealError",
    "TransportError",
    "RejectedError",
    "ShutdownError",
    "FlushTimeoutError",
    "SpoolError",
    "InvalidRecordsError",
    "AuditError",
]


class TracexError(Exception):
    """Base class of every tracex error. ``code`` is the core's stable error code."""

    code: str = "TRACEX_ERROR"


class ConfigError(TracexError, ValueError):
    """A configuration value is missing or invalid (``TRACEX_CONFIG``)."""

    code = "TRACEX_CONFIG"


class PublicKeyError(ConfigError):
    """The collector public key could not be parsed (``TRACEX_PUBLIC_KEY``)."""

    code = "TRACEX_PUBLIC_KEY"


class FingerprintMismatchError(PublicKeyError):
    """The collector key does not match the pinned fingerprint (``TRACEX_FINGERPRINT_MISMATCH``)."""

    code = "TRACEX_FINGERPRINT_MISMATCH"


class InvalidContextError(TracexError, ValueError):
    """A ``traceparent`` or id is malformed (``TRACEX_INVALID_CONTEXT``)."""

    code = "TRACEX_INVALID_CONTEXT"


class EnvelopeError(TracexError, ValueError):
    """Sealed bytes are malformed, of an unknown version, tampered with, or not OTLP
    (``TRACEX_MALFORMED_ENVELOPE``, ``TRACEX_UNSUPPORTED_VERSION``, ``TRACEX_OPEN_FAILED``,
    ``TRACEX_DECODE``)."""

    code = "TRACEX_MALFORMED_ENVELOPE"


class SealError(TracexError, RuntimeError):
    """Sealing failed, or no randomness was available (``TRACEX_SEAL``, ``TRACEX_RANDOM``)."""

    code = "TRACEX_SEAL"


class TransportError(TracexError, ConnectionError):
    """The collector could not be reached (``TRACEX_TRANSPORT``)."""

    code = "TRACEX_TRANSPORT"


class RejectedError(TransportError):
    """The collector rejected a request for good (``TRACEX_REJECTED``)."""

    code = "TRACEX_REJECTED"


class ShutdownError(TracexError, RuntimeError):
    """The tracer has been shut down (``TRACEX_SHUTDOWN``)."""

    code = "TRACEX_SHUTDOWN"


class FlushTimeoutError(TracexError, builtins.TimeoutError):
    """A flush or shutdown did not finish in time (``TRACEX_TIMEOUT``)."""

    code = "TRACEX_TIMEOUT"


class SpoolError(TracexError, OSError):
    """The on-disk spool could not be read or written (``TRACEX_SPOOL``)."""

    code = "TRACEX_SPOOL"


class InvalidRecordsError(TracexError, RuntimeError):
    """A span record buffer was malformed: a bug in tracex (``TRACEX_INVALID_RECORDS``)."""

    code = "TRACEX_INVALID_RECORDS"


class AuditError(TracexError, ValueError):
    """An audit proof, checkpoint, receipt or verifier key did not verify or is malformed
    (``TRACEX_AUDIT``)."""

    code = "TRACEX_AUDIT"
