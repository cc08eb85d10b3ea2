// Errors thrown by tracex: `TracexError` with the core's stable `code`, and a subclass per family.

/** Base class of every error tracex throws; `code` is a stable `TRACEX_*` string. */
export class TracexError extends Error {
  constructor(message, code = 'TRACEX_ERROR', options) {
    super(message, options);
    this.name = 'TracexError';
    this.code = code;
  }
}

/** Invalid options or environment (`TRACEX_CONFIG`). */
export class ConfigError extends TracexError {
  constructor(message, code = 'TRACEX_CONFIG', options) {
    super(message, code, options);
    this.name = 'ConfigError';
  }
}

/** The collector key is invalid or does not match the pinned fingerprint. */
export class KeyError extends TracexError {
  constructor(message, code = 'TRACEX_PUBLIC_KEY', options) {
    super(message, code, options);
    this.name = 'KeyError';
  }
}

/** A malformed `traceparent`/`tracestate` or id. */
export class ContextError extends TracexError {
  constructor(message, code = 'TRACEX_INVALID_CONTEXT', options) {
    super(message, code, options);
    this.name = 'ContextError';
  }
}

/** Delivery failed (transport, rejection, spool, timeout, shut down). */
export class ExportError extends TracexError {
  constructor(message, code = 'TRACEX_TRANSPORT', options) {
    super(message, code, options);
    this.name = 'ExportError';
  }
}

const BY_CODE = {
  TRACEX_CONFIG: ConfigError,
  TRACEX_PUBLIC_KEY: KeyError,
  TRACEX_FINGERPRINT_MISMATCH: KeyError,
  TRACEX_INVALID_CONTEXT: ContextError,
  TRACEX_TRANSPORT: ExportError,
  TRACEX_REJECTED: ExportError,
  TRACEX_SPOOL: ExportError,
  TRACEX_TIMEOUT: ExportError,
  TRACEX_SHUTDOWN: ExportError,
};

/** Re-throws a native error as the matching `TracexError` subclass (keeping it as `cause`). */
export function fromNative(e) {
  if (e instanceof TracexError) return e;
  const code = e && typeof e.code === 'string' && e.code.startsWith('TRACEX_') ? e.code : 'TRACEX_ERROR';
  const Cls = BY_CODE[code] || TracexError;
  return new Cls(e && e.message ? e.message : String(e), code, { cause: e });
}
