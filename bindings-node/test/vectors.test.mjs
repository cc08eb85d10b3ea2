// The shared wire vectors (tests/vectors/envelope-v1.json) through the addon: the same compiled
// core that seals real batches reproduces every envelope byte and rejects every tampered one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readVectors, testing, vectorsDir } from './collector.mjs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const doc = readVectors();
const publicPem = readFileSync(join(vectorsDir, 'collector-test-key.pub.pem'), 'utf8');
const hex = (s) => Buffer.from(s, 'hex');

test('sealing reproduces every vector byte for byte', () => {
  assert.ok(doc.cases.length >= 3);
  for (const c of doc.cases) {
    assert.equal(testing.vectorWrapKey(publicPem, c.data_key, c.oaep_seed), c.wrapped_key, `${c.name}: wrap`);
    const h = c.header;
    const env = testing.vectorSeal(
      publicPem,
      {
        flags: h.flags,
        batchId: h.batch_id,
        instanceId: h.instance_id,
        sequence: h.sequence,
        createdAtUnixNano: h.created_at_unix_nano,
        sdkName: h.sdk_name,
        sdkVersion: h.sdk_version,
        nonce: h.nonce,
      },
      hex(c.wrapped_key),
      hex(c.data_key),
      hex(c.payload),
    );
    assert.equal(Buffer.from(env).toString('hex'), c.envelope, `${c.name}: envelope`);
  }
});

test('opening recovers the OTLP payload and its spans', () => {
  for (const c of doc.cases) {
    const plain = testing.vectorOpen(hex(c.envelope), hex(c.data_key));
    assert.equal(Buffer.from(plain).toString('hex'), c.otlp, c.name);
    assert.deepEqual(
      testing.vectorSpanNames(plain),
      c.expect.spans.map((s) => s.name),
    );
  }
});

test('every tampered vector is rejected with a code', () => {
  let n = 0;
  for (const c of doc.cases) {
    for (const t of c.tampered) {
      assert.throws(
        () => testing.vectorOpen(hex(t.envelope), hex(c.data_key)),
        (e) => /^TRACEX_(OPEN_FAILED|MALFORMED_ENVELOPE|UNSUPPORTED_VERSION)$/.test(e.code),
        `offset ${t.offset}`,
      );
      n++;
    }
  }
  assert.ok(n >= 40, `${n} tampered cases`);
});

test('the JS layer samples root spans exactly as the core does', () => {
  const { randomBytes } = require('node:crypto');
  let kept = 0;
  for (const ratio of [0, 1e-9, 0.001, 0.25, 0.5, 0.999999, 1]) {
    for (let i = 0; i < 2000; i++) {
      const id = randomBytes(16).toString('hex');
      const core = testing.coreSampled(ratio, id);
      assert.equal(testing.jsSampled(ratio, id), core, `ratio ${ratio}, trace ${id}`);
      kept += core ? 1 : 0;
    }
    // Ids right at the bound: the low 63 bits of bytes 8..16 equal to / just under ratio × 2^63.
    const bound = BigInt(Math.floor(ratio * 2 ** 63));
    for (const v of [bound, bound - 1n, bound + 1n]) {
      if (v < 0n || v >= 2n ** 63n) continue;
      const id = '0'.repeat(16) + (v << 1n).toString(16).padStart(16, '0');
      assert.equal(testing.jsSampled(ratio, id), testing.coreSampled(ratio, id), `ratio ${ratio} at the bound`);
    }
  }
  assert.ok(kept > 0);
});
