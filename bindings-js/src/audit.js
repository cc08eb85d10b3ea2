// The audit trail's verifiers (core/src/audit, docs/audit.md) over a native module — the Node addon
// or the WASM module, which both export them as `audit*` functions: receipts, inclusion and
// consistency proofs, checkpoints. Hashes and ids are hex strings; sizes and indexes are numbers
// (checked here to be safe integers, as the native side takes them as doubles); every failure
// throws `AuditError` (`TRACEX_AUDIT`).

import { AuditError, fromNative } from './errors.js';

function u64(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new AuditError(`${what} must be a non-negative safe integer, not ${String(n)}`);
  }
  return n;
}

function call(f, args) {
  try {
    return f(...args);
  } catch (e) {
    throw fromNative(e);
  }
}

/** The `audit` namespace over `native`. */
export function auditApi(native) {
  return Object.freeze({
    /**
     * Verifies the receipt `note` (the `receipt` of a batch acknowledgement) signed by the audit key
     * `verifierKey` for the batch `batchIdHex` whose envelope hashes to `envelopeSha256Hex`.
     * Returns `{ origin, leafIndex, batchId, envelopeSha256, receivedAtUnixNano }`.
     */
    verifyReceipt: (note, verifierKey, batchIdHex, envelopeSha256Hex) =>
      call(native.auditVerifyReceipt, [note, verifierKey, batchIdHex, envelopeSha256Hex]),
    /** Checks that `leafHashHex` is leaf `index` of the tree of `size` leaves with root `rootHex`. */
    verifyInclusion: (leafHashHex, index, size, proofHex, rootHex) =>
      call(native.auditVerifyInclusion, [leafHashHex, u64(index, 'index'), u64(size, 'size'), proofHex, rootHex]),
    /** Checks that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves. */
    verifyConsistency: (oldSize, newSize, oldRootHex, newRootHex, proofHex) =>
      call(native.auditVerifyConsistency, [
        u64(oldSize, 'oldSize'),
        u64(newSize, 'newSize'),
        oldRootHex,
        newRootHex,
        proofHex,
      ]),
    /**
     * Verifies a checkpoint signed by `verifierKey` for the log named as the key:
     * `{ origin, size, rootHash, signedAtUnixNano }` (the time a decimal string, or null).
     */
    openCheckpoint: (note, verifierKey) => call(native.auditOpenCheckpoint, [note, verifierKey]),
  });
}
