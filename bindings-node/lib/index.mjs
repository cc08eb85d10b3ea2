// ESM entry: the CommonJS bundle, re-exported (one module instance for `import` and `require`).
import cjs from './index.cjs';

export const {
  Tracer,
  Span,
  NonRecordingSpan,
  SpanKind,
  SpanStatusCode,
  TracexError,
  ConfigError,
  PublicKeyError,
  FingerprintMismatchError,
  InvalidContextError,
  EnvelopeError,
  SealError,
  ExportError,
  TransportError,
  RejectedError,
  ShutdownError,
  FlushTimeoutError,
  SpoolError,
  InvalidRecordsError,
  AuditError,
  KeyError,
  ContextError,
  extract,
  inject,
  contextFromIds,
  context,
  reseedIds,
  audit,
} = cjs;
export default cjs;
