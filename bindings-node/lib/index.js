// The `tracex` npm package: the shared JS API (bindings-js) over the napi-rs addon. Bundled by
// scripts/build-js.mjs into dist/index.cjs; dist/index.mjs re-exports it for `import`.

import './webcrypto.js'; // before any span: the shared layer seeds ids from globalThis.crypto on first use
import { AsyncLocalStorage } from 'node:async_hooks';
import native from './native.cjs';
import { AsyncContext, BaseTracer, auditApi, reseed } from '../../bindings-js/src/index.js';
import pkg from '../package.json';

export {
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
} from '../../bindings-js/src/index.js';

const platform = {
  NativeTracer: native.NativeTracer,
  context: new AsyncContext(AsyncLocalStorage),
  sdkName: 'tracex-node',
  sdkVersion: pkg.version,
};

const live = new Set();
let hooked = false;

/**
 * A tracer: `new Tracer({ endpoint, apiKey, serviceName, collectorPublicKey | collectorFingerprint,
 * sampleRatio, … })`, each option falling back to its `TRACEX_*` environment variable.
 */
export class Tracer extends BaseTracer {
  constructor(options) {
    super(options, platform);
    if (options?.flushOnExit !== false) {
      live.add(this);
      hookProcess();
    }
  }

  shutdown(timeoutMs) {
    live.delete(this);
    return super.shutdown(timeoutMs);
  }
}

/** The context manager shared by every tracer of this package (one AsyncLocalStorage). */
export const context = platform.context;

// Flush on `beforeExit` (the loop is empty: send what is left, once), and on SIGTERM/SIGINT when
// nobody else handles them (flush with a short timeout, then let the signal take its default course).
function hookProcess() {
  if (hooked || typeof process === 'undefined' || typeof process.on !== 'function') return;
  hooked = true;
  let exiting = false;
  process.on('beforeExit', () => {
    if (exiting || live.size === 0) return;
    exiting = true;
    const all = [...live];
    live.clear();
    Promise.allSettled(all.map((t) => t.shutdown(5000)));
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    if (process.listenerCount(sig) > 0) continue;
    const onSignal = () => {
      const all = [...live];
      live.clear();
      const done = () => {
        process.removeListener(sig, onSignal);
        // Someone else handles the signal (they added a listener after us): leave exiting to them.
        // Otherwise re-raise it, so the process ends the way it would have without tracex.
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      };
      Promise.allSettled(all.map((t) => t.shutdown(2000))).then(done, done);
    };
    process.on(sig, onSignal);
  }
}

/** Verifying the collector's audit trail: receipts, inclusion and consistency proofs, checkpoints. */
export const audit = auditApi(native);

/** Re-seeds span ids (call in a child after `child_process.fork` of a process that already traced). */
export const reseedIds = reseed;
