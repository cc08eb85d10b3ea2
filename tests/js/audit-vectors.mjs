// The audit vectors (tests/vectors/audit.json) through a JS package's `audit` namespace, in any
// runtime (Node, Deno, a browser page): no Node APIs and no assertion library, so a test anywhere
// can run it and assert that `failures` is empty. Used by the Node package's and the WASM
// package's tests.

const b64hex = (s) => Array.from(atob(s), (ch) => ch.charCodeAt(0).toString(16).padStart(2, '0')).join('');

/** Flips the lowest bit of the last byte of a hex hash. */
const flip = (h) => h.slice(0, -2) + (Number.parseInt(h.slice(-2), 16) ^ 1).toString(16).padStart(2, '0');

/**
 * Checks every receipt, inclusion, consistency and checkpoint case of `doc` with `audit`; each
 * refusal must be an `AuditError` with code TRACEX_AUDIT. Returns the failures (strings) and how
 * many cases of each section were checked.
 */
export function checkAuditVectors(audit, AuditError, doc) {
  const failures = [];
  const counts = { receipts: 0, refusedReceipts: 0, inclusion: 0, consistency: 0, checkpoints: 0 };
  const ok = (what, f) => {
    try {
      return f();
    } catch (e) {
      failures.push(`${what}: threw ${e?.name} ${e?.code}: ${e?.message}`);
      return undefined;
    }
  };
  const refused = (what, f) => {
    try {
      f();
      failures.push(`${what}: verified`);
    } catch (e) {
      if (!(e instanceof AuditError) || e.code !== 'TRACEX_AUDIT') {
        failures.push(`${what}: threw ${e?.name} ${e?.code}: ${e?.message}`);
      }
    }
    return undefined;
  };
  const same = (what, got, want) => {
    if (got !== want) failures.push(`${what}: ${JSON.stringify(got)} is not ${JSON.stringify(want)}`);
  };

  // A case that must verify gives what `f` returns; one that must not is refused, and gives nothing.
  const expect = (what, valid, f) => (valid ? ok(what, f) : refused(what, f));

  for (const c of doc.receipts) {
    const what = `receipt "${c.desc}"`;
    counts.receipts += 1;
    counts.refusedReceipts += c.valid ? 0 : 1;
    const r = expect(what, c.valid, () => audit.verifyReceipt(c.note, c.verifier_key, c.batch_id, c.envelope_sha256));
    if (!r) continue;
    same(`${what} leafIndex`, r.leafIndex, c.leaf_index);
    same(`${what} receivedAtUnixNano`, r.receivedAtUnixNano, c.received_at_unix_nano);
    same(`${what} batchId`, r.batchId, c.batch_id);
    same(`${what} envelopeSha256`, r.envelopeSha256, c.envelope_sha256);
    same(`${what} origin`, r.origin, c.verifier_key.split('+')[0]);
  }

  for (const c of doc.inclusion) {
    const what = `inclusion of ${c.index} in ${c.size}`;
    const [leaf, root, proof] = [b64hex(c.leaf_hash), b64hex(c.root), c.proof.map(b64hex)];
    counts.inclusion += 1;
    ok(what, () => audit.verifyInclusion(leaf, c.index, c.size, proof, root));
    refused(`${what}, root flipped`, () => audit.verifyInclusion(leaf, c.index, c.size, proof, flip(root)));
    proof.forEach((h, i) => {
      const bad = proof.map((x, j) => (j === i ? flip(h) : x));
      refused(`${what}, proof hash ${i} flipped`, () => audit.verifyInclusion(leaf, c.index, c.size, bad, root));
    });
  }

  for (const c of doc.consistency) {
    const what = `consistency ${c.old_size} → ${c.new_size}`;
    const [oldRoot, newRoot, proof] = [b64hex(c.old_root), b64hex(c.new_root), c.proof.map(b64hex)];
    counts.consistency += 1;
    ok(what, () => audit.verifyConsistency(c.old_size, c.new_size, oldRoot, newRoot, proof));
    if (c.old_size > 0) {
      // (Every tree extends the empty one, whatever its root.)
      refused(`${what}, new root flipped`, () =>
        audit.verifyConsistency(c.old_size, c.new_size, oldRoot, flip(newRoot), proof),
      );
    }
    proof.forEach((h, i) => {
      const bad = proof.map((x, j) => (j === i ? flip(h) : x));
      refused(`${what}, proof hash ${i} flipped`, () =>
        audit.verifyConsistency(c.old_size, c.new_size, oldRoot, newRoot, bad),
      );
    });
  }

  for (const c of doc.checkpoints) {
    const what = `checkpoint "${c.desc}"`;
    counts.checkpoints += 1;
    const cp = expect(what, c.valid, () => audit.openCheckpoint(c.note, doc.checkpoint_verifier_key));
    if (!cp) continue;
    same(`${what} origin`, cp.origin, doc.checkpoint_origin);
    same(`${what} size`, cp.size, c.size);
    same(`${what} rootHash`, cp.rootHash, b64hex(c.root));
    same(`${what} signedAtUnixNano`, cp.signedAtUnixNano, c.signed_at_unix_nano);
  }

  // Malformed input is refused the same way.
  const leaf = b64hex(doc.inclusion[0].leaf_hash);
  refused('a negative index', () => audit.verifyInclusion(leaf, -1, 1, [], leaf));
  refused('a fractional size', () => audit.verifyConsistency(0.5, 1, leaf, leaf, []));
  refused('a hash that is not hex', () => audit.verifyInclusion('zz', 0, 1, [], leaf));
  refused('a malformed verifier key', () => audit.openCheckpoint(doc.checkpoints[0].note, 'not a key'));
  return { failures, counts };
}
