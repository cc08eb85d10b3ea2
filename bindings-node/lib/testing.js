// Test support for the shared vectors and the record-buffer encoder, bundled by
// `scripts/build-js.mjs --testing <dir>` next to an addon built with feature `testing`. Never
// packed: the released package has no such entry point (scripts/test-node.sh checks).
import native from './native.cjs';
import {
  ERROR_CLASSES,
  RecordWriter,
  TracexError,
  fromNative,
  hexToWords,
  ratioBound,
  sampledByRatio,
} from '../../bindings-js/src/index.js';

export const vectorWrapKey = native.vectorWrapKey;
export const vectorSeal = native.vectorSeal;
export const vectorOpen = native.vectorOpen;
export const vectorSpanNames = native.vectorSpanNames;
/** The core's root-sampling decision for a trace id (hex). */
export const coreSampled = native.coreSampled;
/** Decodes a record buffer with the core's decoder (what `ingest` does) and returns it as JSON. */
export const recordsJson = (bytes) => JSON.parse(native.recordsJson(bytes));

/** The JS layer's root-sampling decision for a trace id (hex), as startSpan makes it. */
export function jsSampled(ratio, traceIdHex) {
  const [, , t2, t3] = hexToWords(traceIdHex, 4);
  const [hi, lo] = ratioBound(ratio);
  return sampledByRatio(ratio, hi, lo, t2, t3);
}
export { RecordWriter };

/**
 * The error the package raises when the core fails with `code`: the addon throws the core's example
 * error of that code, and the JS layer maps it as it maps every native error.
 */
export function packageError(code) {
  try {
    native.coreError(code);
  } catch (e) {
    return fromNative(e);
  }
  throw new Error(`coreError(${code}) did not throw`);
}
export { ERROR_CLASSES, TracexError };
