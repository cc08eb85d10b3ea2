// `tracex/testing`: test support for the shared wire vectors and the record-buffer encoder. Not part
// of the public API.
export { vectorWrapKey, vectorSeal, vectorOpen, vectorSpanNames, coreSampled, threadCpuTimeNs, VectorHeader } from './dist/native';
export declare function jsSampled(ratio: number, traceIdHex: string): boolean;
/** A record buffer decoded by the core (what `ingest` sees), every field as JSON. */
export declare function recordsJson(bytes: Uint8Array): { sampledOut: number; spans: Record<string, unknown>[] };
export declare class RecordWriter {
  constructor(anchorMs: number);
  write(spans: unknown[], sampledOut: number): Uint8Array;
}
