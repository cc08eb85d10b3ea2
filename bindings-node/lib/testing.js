// `tracex/testing`: test support for the shared wire vectors and the record-buffer encoder. Not part
// of the public API.
import native from './native.cjs';
import { RecordWriter, hexToWords, ratioBound, sampledByRatio } from '../../bindings-js/src/index.js';

export const vectorWrapKey = native.vectorWrapKey;
export const vectorSeal = native.vectorSeal;
export const vectorOpen = native.vectorOpen;
export const vectorSpanNames = native.vectorSpanNames;
/** The core's root-sampling decision for a trace id (hex). */
export const coreSampled = native.coreSampled;
/** CPU time of the calling thread in ns (benchmarks). */
export const threadCpuTimeNs = native.threadCpuTimeNs;
/** Decodes a record buffer with the core's decoder (what `ingest` does) and returns it as JSON. */
export const recordsJson = (bytes) => JSON.parse(native.recordsJson(bytes));

/** The JS layer's root-sampling decision for a trace id (hex), as startSpan makes it. */
export function jsSampled(ratio, traceIdHex) {
  const [, , t2, t3] = hexToWords(traceIdHex, 4);
  const [hi, lo] = ratioBound(ratio);
  return sampledByRatio(ratio, hi, lo, t2, t3);
}
export { RecordWriter };
