// `tracex/testing`: test support for the shared wire vectors. Not part of the public API.
export { vectorWrapKey, vectorSeal, vectorOpen, vectorSpanNames, coreSampled, VectorHeader } from './dist/native';
export declare function jsSampled(ratio: number, traceIdHex: string): boolean;
export declare class RecordWriter {
  constructor(anchorMs: number);
  write(spans: unknown[], sampledOut: number): Uint8Array;
}
