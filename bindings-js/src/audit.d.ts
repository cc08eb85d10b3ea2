// Types of audit.js, shipped by both JS packages (the Node package as dist/audit.d.ts, the WASM
// package as shared/audit.d.ts) and re-exported by their index.d.ts.

/** A receipt that verified: the batch is leaf `leafIndex` of the log `origin`. */
export interface VerifiedReceipt {
  origin: string;
  leafIndex: number;
  /** The batch id, hex. */
  batchId: string;
  /** SHA-256 of the envelope as the collector received it, hex. */
  envelopeSha256: string;
  /** When the collector received the batch: unix nanoseconds, decimal (beyond a number's exact range). */
  receivedAtUnixNano: string;
}

/** A checkpoint that verified: the log `origin` had `size` leaves with root `rootHash` (hex). */
export interface VerifiedCheckpoint {
  origin: string;
  size: number;
  rootHash: string;
  /** When the collector signed it: unix nanoseconds, decimal; null for a checkpoint without a time line. */
  signedAtUnixNano: string | null;
}

/**
 * Verifying the collector's audit trail (docs/audit.md). Hashes and ids are hex; sizes and
 * indexes non-negative safe integers; each function throws `AuditError` (`TRACEX_AUDIT`) when the
 * input does not verify or is malformed.
 */
export interface Audit {
  /** Verifies a batch's receipt, signed by the audit key `verifierKey`, for that batch id and envelope hash. */
  verifyReceipt(note: string, verifierKey: string, batchIdHex: string, envelopeSha256Hex: string): VerifiedReceipt;
  /** Checks that `leafHashHex` is leaf `index` of the tree of `size` leaves whose root is `rootHex`. */
  verifyInclusion(leafHashHex: string, index: number, size: number, proofHex: string[], rootHex: string): void;
  /** Checks that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves. */
  verifyConsistency(oldSize: number, newSize: number, oldRootHex: string, newRootHex: string, proofHex: string[]): void;
  /** Verifies a checkpoint signed by `verifierKey` for the log named as the key. */
  openCheckpoint(note: string, verifierKey: string): VerifiedCheckpoint;
}

/** The `audit` namespace over a native module exporting the `audit*` functions. */
export declare function auditApi(native: object): Audit;
