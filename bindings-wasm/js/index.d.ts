import type { NativeOptions, FlushReport, Stats } from './tracex_wasm.js';
export type { NativeOptions, FlushReport, Stats } from './tracex_wasm.js';
export { NativeTracer, collectorKeyId } from './tracex_wasm.js';

/** What `init` accepts: a precompiled module (Workers), a URL, a Response, or the bytes. */
export type InitInput = WebAssembly.Module | URL | string | Response | Promise<Response> | BufferSource;

/**
 * Instantiates the WebAssembly module (once; later calls return the same promise). Required before
 * anything else in browsers and Workers; a no-op in Node, whose entry point loads the module itself.
 */
export function init(input?: InitInput): Promise<void>;
export default init;

export type AttributeValue = string | number | boolean | bigint | Uint8Array | AttributeValue[];
export type Attributes = Record<string, AttributeValue | undefined>;
export type TimeInput = Date | number;

export declare const SpanKind: {
  readonly INTERNAL: 1;
  readonly SERVER: 2;
  readonly CLIENT: 3;
  readonly PRODUCER: 4;
  readonly CONSUMER: 5;
};
export declare const SpanStatusCode: { readonly UNSET: 0; readonly OK: 1; readonly ERROR: 2 };

export interface SpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState?: string;
  isRemote?: boolean;
}

export declare class Span {
  readonly traceId: string;
  readonly spanId: string;
  spanContext(): SpanContext;
  isRecording(): boolean;
  setAttribute(key: string, value: AttributeValue): this;
  setAttributes(attributes: Attributes): this;
  addEvent(name: string, attributes?: Attributes, time?: TimeInput): this;
  addLink(context: SpanContext | Span | RemoteContext, attributes?: Attributes): this;
  recordException(err: unknown, time?: TimeInput): this;
  setStatus(status: { code: number; message?: string } | 'ok' | 'error' | 'unset', message?: string): this;
  updateName(name: string): this;
  end(endTime?: TimeInput): void;
  // biome-ignore lint/suspicious/noExplicitAny: the usual bound for "any function"; `unknown` would reject most
  wrap<F extends (...args: any[]) => any>(fn: F): F;
}
export declare class NonRecordingSpan extends Span {}
export declare class RemoteContext {
  readonly traceId: string;
  readonly spanId: string;
  spanContext(): SpanContext;
}
export function extract(
  carrier: Record<string, string | string[] | undefined> | Headers | Map<string, string>,
): RemoteContext | undefined;
/** A context from hex ids (e.g. read from a queue message); `undefined` when invalid. */
export function contextFromIds(
  traceId: string,
  spanId: string,
  traceFlags?: number,
  traceState?: string,
): RemoteContext | undefined;
export function inject<C extends Record<string, string> | Headers>(span: Span | undefined, carrier?: C): C;

export interface TracerOptions extends Omit<NativeOptions, 'sdkName' | 'sdkVersion'> {
  /** Longest a finished span waits on the JS side before it is handed to the core (ms, default 1000). */
  scheduledDelayMillis?: number;
}

export interface SpanOptions {
  attributes?: Attributes;
  kind?: 'internal' | 'server' | 'client' | 'producer' | 'consumer' | number;
  /** A span, a context from `extract`, or `null` for a new trace (default: the active span). */
  parent?: Span | RemoteContext | SpanContext | null;
  links?: Array<{ context: Span | RemoteContext | SpanContext; attributes?: Attributes }>;
  startTime?: TimeInput;
}

/**
 * The tracer. On the edge nothing is sent until `flush()`: end the handler with
 * `ctx.waitUntil(tracer.flush())`. Requires `endpoint`, `apiKey` and `collectorPublicKey` (PEM) or
 * `collectorFingerprint` (the key is then fetched by the first flushes).
 */
export declare class Tracer {
  constructor(options: TracerOptions);
  readonly collectorKeyId: string;
  activeSpan(): Span | undefined;
  startSpan(name: string, options?: SpanOptions): Span;
  trace<T>(name: string, fn: (span: Span) => T): T;
  trace<T>(name: string, options: SpanOptions, fn: (span: Span) => T): T;
  withSpan<T, A extends unknown[]>(span: Span, fn: (...args: A) => T, ...args: A): T;
  inject<C extends Record<string, string>>(carrier?: C, span?: Span): C;
  extract(carrier: Record<string, string | string[] | undefined> | Headers): RemoteContext | undefined;
  /**
   * Seals and sends every finished span (default timeout 10 s); resolves with what happened.
   * With `lingerMs` (0–20,000): while no other linger flush is waiting, waits `lingerMs` and then
   * sends everything recorded until then in one batch; while one is waiting (and would not wait
   * longer), resolves at once with nothing sent and its queued spans as `pending`: they go with
   * that one. On Workers, `ctx.waitUntil(tracer.flush({ lingerMs: 1000 }))` makes one subrequest
   * a second under steady traffic instead of one per request. Rejects with `ConfigError` for a
   * `lingerMs` out of range.
   */
  flush(timeoutMs?: number): Promise<FlushReport>;
  flush(options: { timeoutMs?: number; lingerMs?: number }): Promise<FlushReport>;
  /** Flushes, then refuses further spans. */
  shutdown(timeoutMs?: number): Promise<FlushReport>;
  stats(): Stats & { spansQueued: number };
}

export declare class TracexError extends Error {
  readonly code: string;
}
/** One class per kind of core error, named as in the Node and Python packages (tests/vectors/errors.json). */
export declare class ConfigError extends TracexError {}
export declare class PublicKeyError extends ConfigError {}
export declare class FingerprintMismatchError extends PublicKeyError {}
export declare class InvalidContextError extends TracexError {}
export declare class EnvelopeError extends TracexError {}
export declare class SealError extends TracexError {}
/** Base of the delivery errors (JS only; kept from 0.1). */
export declare class ExportError extends TracexError {}
export declare class TransportError extends ExportError {}
export declare class RejectedError extends TransportError {}
export declare class ShutdownError extends ExportError {}
export declare class FlushTimeoutError extends ExportError {}
export declare class SpoolError extends ExportError {}
export declare class InvalidRecordsError extends TracexError {}
/** An audit proof, checkpoint, receipt or verifier key did not verify (`TRACEX_AUDIT`). */
export declare class AuditError extends TracexError {}
export type { VerifiedReceipt, VerifiedCheckpoint } from './shared/audit';
/** Verifying the collector's audit trail: receipts, inclusion and consistency proofs, checkpoints. */
export declare const audit: import('./shared/audit').Audit;
/** @deprecated the 0.1 name of `PublicKeyError`. */
export declare const KeyError: typeof PublicKeyError;
/** @deprecated the 0.1 name of `InvalidContextError`. */
export declare const ContextError: typeof InvalidContextError;
