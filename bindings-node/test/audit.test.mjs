// The audit vectors (tests/vectors/audit.json) through the installed package's `audit`: every
// receipt, inclusion, consistency and checkpoint case verifies or is refused with an AuditError
// (TRACEX_AUDIT) exactly as the core's own test (core/tests/audit_vectors.rs) says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readVectors, repo, tracex } from './collector.mjs';

const { checkAuditVectors } = await import(join(repo, 'tests/js/audit-vectors.mjs'));
const doc = readVectors('audit.json');

test('every audit vector verifies or is refused as the core says', () => {
  const { failures, counts } = checkAuditVectors(tracex.audit, tracex.AuditError, doc);
  assert.deepEqual(failures, []);
  assert.ok(counts.receipts >= 6 && counts.refusedReceipts >= 5, JSON.stringify(counts));
  assert.ok(counts.inclusion >= 36 && counts.consistency >= 44 && counts.checkpoints >= 8, JSON.stringify(counts));
});

test('a receipt with a flipped byte is refused with code TRACEX_AUDIT', () => {
  const c = doc.receipts.find((r) => r.valid);
  const r = tracex.audit.verifyReceipt(c.note, c.verifier_key, c.batch_id, c.envelope_sha256);
  assert.equal(r.leafIndex, c.leaf_index);
  const at = c.note.indexOf('\n') + 3;
  const flipped = c.note.slice(0, at) + String.fromCharCode(c.note.charCodeAt(at) ^ 1) + c.note.slice(at + 1);
  assert.throws(
    () => tracex.audit.verifyReceipt(flipped, c.verifier_key, c.batch_id, c.envelope_sha256),
    (e) => e instanceof tracex.AuditError && e instanceof tracex.TracexError && e.code === 'TRACEX_AUDIT',
  );
});
