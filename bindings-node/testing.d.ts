// Types of testing-dist/testing.cjs (`npm run build:testing`): test support for the shared vectors
// and the record-buffer encoder. Not in the released package.
export {
  vectorWrapKey,
  vectorSeal,
  vectorOpen,
  vectorSpanNames,
  coreSampled,
  VectorHeader,
} from './testing-dist/native';
/** The error the package raises when the core fails with `code`. */
export declare function packageError(code: string): Error & { code: string };
export declare function jsSampled(ratio: number, traceIdHex: string): boolean;
/** A record buffer decoded by the core (what `ingest` sees), every field as JSON. */
export declare function recordsJson(bytes: Uint8Array): { sampledOut: number; spans: Record<string, unknown>[] };
export declare class RecordWriter {
  constructor(anchorMs: number);
  write(spans: unknown[], sampledOut: number): Uint8Array;
}
