// Errors thrown by tracex: `TracexError` with the core's stable `code`, and one subclass per kind of
// core error (core/src/error.rs, `ErrorKind`). The class names are the core's
// (`ErrorKind::class_name`), the same as the Python package's; tests/vectors/errors.json pins them.

/** Base class of every error tracex throws; `code` is a stable `TRACEX_*` string. */
export class TracexError extends Error {
  constructor(message, code = 'TRACEX_ERROR', options) {
    super(message, options);
    this.name = 'TracexError';
    this.code = code;
  }
}

/** Declares a subclass of `Base` named `name` whose `code` defaults to `code`. */
function kind(name, Base, code) {
  // A computed class name, so `err.name`, stack traces and `constructor.name` all say `name`.
  const Cls = {
    [name]: class extends Base {
      constructor(message, c = code, options) {
        super(message, c, options);
        this.name = name;
      }
    },
  }[name];
  return Cls;
}

/** Invalid options or environment (`TRACEX_CONFIG`). */
export const ConfigError = kind('ConfigError', TracexError, 'TRACEX_CONFIG');
/** The collector public key is invalid (`TRACEX_PUBLIC_KEY`). */
export const PublicKeyError = kind('PublicKeyError', ConfigError, 'TRACEX_PUBLIC_KEY');
/** The collector key does not match the pinned fingerprint (`TRACEX_FINGERPRINT_MISMATCH`). */
export const FingerprintMismatchError = kind('FingerprintMismatchError', PublicKeyError, 'TRACEX_FINGERPRINT_MISMATCH');
/** A malformed `traceparent` or id (`TRACEX_INVALID_CONTEXT`). */
export const InvalidContextError = kind('InvalidContextError', TracexError, 'TRACEX_INVALID_CONTEXT');
/** Sealed bytes that are malformed, of an unknown version, tampered with, or not OTLP. */
export const EnvelopeError = kind('EnvelopeError', TracexError, 'TRACEX_MALFORMED_ENVELOPE');
/** Sealing failed, or no randomness was available (`TRACEX_SEAL`, `TRACEX_RANDOM`). */
export const SealError = kind('SealError', TracexError, 'TRACEX_SEAL');
/**
 * Base of the delivery errors below (JS only: Python's classes inherit builtins such as
 * `ConnectionError` instead). Kept so `instanceof ExportError` code written for 0.1 still works.
 */
export const ExportError = kind('ExportError', TracexError, 'TRACEX_TRANSPORT');
/** The collector could not be reached (`TRACEX_TRANSPORT`). */
export const TransportError = kind('TransportError', ExportError, 'TRACEX_TRANSPORT');
/** The collector rejected a batch for good (`TRACEX_REJECTED`). */
export const RejectedError = kind('RejectedError', TransportError, 'TRACEX_REJECTED');
/** The tracer has been shut down (`TRACEX_SHUTDOWN`). */
export const ShutdownError = kind('ShutdownError', ExportError, 'TRACEX_SHUTDOWN');
/** A flush or shutdown did not finish in time (`TRACEX_TIMEOUT`). */
export const FlushTimeoutError = kind('FlushTimeoutError', ExportError, 'TRACEX_TIMEOUT');
/** The on-disk spool could not be read or written (`TRACEX_SPOOL`). */
export const SpoolError = kind('SpoolError', ExportError, 'TRACEX_SPOOL');
/** A span record buffer the package wrote was malformed: a bug in tracex (`TRACEX_INVALID_RECORDS`). */
export const InvalidRecordsError = kind('InvalidRecordsError', TracexError, 'TRACEX_INVALID_RECORDS');
/** An audit proof, checkpoint, receipt or verifier key did not verify or is malformed (`TRACEX_AUDIT`). */
export const AuditError = kind('AuditError', TracexError, 'TRACEX_AUDIT');

/** @deprecated the 0.1 name of `PublicKeyError` (the same class). */
export const KeyError = PublicKeyError;
/** @deprecated the 0.1 name of `InvalidContextError` (the same class). */
export const ContextError = InvalidContextError;

/**
 * The class of each kind, keyed by the class name the native side sends as `err.kind`: one entry per
 * `ErrorKind` of the core, no default (tests/vectors/errors.json is checked against it).
 */
export const CLASSES = Object.freeze({
  ConfigError,
  PublicKeyError,
  FingerprintMismatchError,
  InvalidContextError,
  EnvelopeError,
  SealError,
  TransportError,
  RejectedError,
  ShutdownError,
  FlushTimeoutError,
  InvalidRecordsError,
  SpoolError,
  AuditError,
});

/**
 * Re-throws a native error as the class of its kind (keeping it as `cause`). Errors that did not
 * come from the core (no `kind`, e.g. a TypeError from argument conversion) become `TracexError`.
 */
export function fromNative(e) {
  if (e instanceof TracexError) return e;
  const code = e && typeof e.code === 'string' && e.code.startsWith('TRACEX_') ? e.code : 'TRACEX_ERROR';
  const Cls = (e && Object.hasOwn(CLASSES, e.kind) && CLASSES[e.kind]) || TracexError;
  return new Cls(e?.message ? e.message : String(e), code, { cause: e });
}
