// The shared wire vectors (tests/vectors/envelope-v1.json) through the WASM module: sealing with the
// vectors' fixed inputs reproduces the natively generated envelopes byte for byte, opening recovers
// the payload, every tampered byte is refused; and an envelope built in WASM the same way, but for
// the live collector's key, is opened and stored by the collector with exactly the vector's spans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuditError, audit, collectorKeyId } from 'tracex-wasm';
import { checkAuditVectors } from '../../tests/js/audit-vectors.mjs';
import { vectors, testKeyPem, unhex, hex, startCollector, flatten, attrs, testBuild } from './helpers.mjs';

// The fixed-input helpers exist only in the test build (pkg-testing/, feature `testing`).
const { openWithDataKey, sealWithFixedInputs } = await testBuild();

const doc = vectors();

function seal(pem, c) {
  const h = c.header;
  return sealWithFixedInputs(
    pem,
    unhex(c.data_key),
    unhex(c.oaep_seed),
    h.flags,
    unhex(h.batch_id),
    unhex(h.instance_id),
    BigInt(h.sequence),
    BigInt(h.created_at_unix_nano),
    h.sdk_name,
    h.sdk_version,
    unhex(h.nonce),
    unhex(c.payload),
  );
}

test('the test key has the vectors key id', () => {
  assert.equal(collectorKeyId(testKeyPem()), doc.key_id_hex);
});

test('sealing in WASM reproduces every vector envelope byte for byte', () => {
  assert.ok(doc.cases.length >= 3);
  for (const c of doc.cases) {
    assert.equal(hex(seal(testKeyPem(), c)), c.envelope, c.name);
  }
});

test('opening in WASM recovers every vector payload', () => {
  for (const c of doc.cases) {
    assert.equal(hex(openWithDataKey(unhex(c.envelope), unhex(c.data_key))), c.otlp, c.name);
  }
});

test('every tampered vector is refused in WASM', () => {
  let checked = 0;
  for (const c of doc.cases) {
    for (const t of c.tampered) {
      assert.throws(
        () => openWithDataKey(unhex(t.envelope), unhex(c.data_key)),
        (e) => ['TRACEX_OPEN_FAILED', 'TRACEX_MALFORMED_ENVELOPE', 'TRACEX_UNSUPPORTED_VERSION'].includes(e.code),
        `${c.name} offset ${t.offset}`,
      );
      checked++;
    }
  }
  assert.ok(checked >= 30, `${checked}`);
});

for (const c of doc.cases.filter((c) => c.expect.spans.length > 0)) {
  test(`${c.name}: sealed in WASM for the live collector key, it is opened and stored with the vector spans`, async () => {
    // A collector per case: the cases share span ids, and each must prove itself.
    const collector = await startCollector();
    try {
      const body = seal(collector.publicKeyPem, c);
      const r = await fetch(`${collector.url}/v1/batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${collector.ingestKey}`, 'content-type': 'application/vnd.tracex.batch.v1' },
        body,
      });
      assert.equal(r.status, 200, `${c.name}: ${await r.text()}`);
      const want = c.expect.spans;
      for (const traceId of new Set(want.map((s) => s.trace_id))) {
        const { status, body: trace } = await collector.trace(traceId);
        assert.equal(status, 200);
        const got = new Map(flatten(trace.spans).map((s) => [s.span_id, s]));
        for (const w of want.filter((s) => s.trace_id === traceId)) {
          const s = got.get(w.span_id);
          assert.ok(s, `${c.name}: span ${w.span_id} stored`);
          assert.equal(s.name, w.name);
          assert.equal(s.parent_span_id, w.parent_span_id);
          assert.equal(s.status.message, w.status_message);
          assert.equal(s.start_time_unix_nano, w.start_time_unix_nano);
          assert.equal(s.end_time_unix_nano, w.end_time_unix_nano);
          assert.equal(s.service_name, c.expect.service_name);
          const a = attrs(s.attributes);
          for (const [k, v] of Object.entries(w.attributes)) {
            const g = a[k];
            assert.ok(g, `${c.name}: ${k}`);
            if (typeof v === 'string') assert.deepEqual(g, { stringValue: v });
            else if (typeof v === 'boolean') assert.deepEqual(g, { boolValue: v });
            else if (Array.isArray(v)) assert.equal(g.arrayValue.values.length, v.length);
            else if (Number.isInteger(v) && 'intValue' in g) assert.equal(g.intValue, String(v));
            else assert.equal(g.doubleValue, v);
          }
        }
      }
    } finally {
      await collector.stop();
    }
  });
}

test('every audit vector verifies in WASM or is refused with AuditError, as the core says', () => {
  const { failures, counts } = checkAuditVectors(audit, AuditError, vectors('audit.json'));
  assert.deepEqual(failures, []);
  assert.ok(counts.receipts >= 6 && counts.refusedReceipts >= 5, JSON.stringify(counts));
  assert.ok(counts.inclusion >= 36 && counts.consistency >= 44 && counts.checkpoints >= 8, JSON.stringify(counts));
});
