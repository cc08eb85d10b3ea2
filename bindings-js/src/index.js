// The shared JS API of the tracex packages (Node addon and WASM).
export { BaseTracer, ratioBound, sampledByRatio } from './tracer.js';
export { Span, NonRecordingSpan, SpanKind, SpanStatusCode } from './span.js';
export { RemoteContext, extract, inject, contextFromIds } from './propagation.js';
export {
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
  CLASSES as ERROR_CLASSES,
  fromNative,
} from './errors.js';
export { AsyncContext, StackContext } from './context.js';
export { RecordWriter } from './records.js';
export { auditApi } from './audit.js';
export { reseed, hexToWords } from './ids.js';
