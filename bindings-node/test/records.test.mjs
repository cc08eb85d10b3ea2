// The JS record-buffer encoder (bindings-js/src/records.js) against the core's decoder: randomized
// spans of every field and value type are written by the JS layer, decoded by the addon exactly as
// `ingest` decodes them, and compared field by field. The cases drive every cache and fallback of
// the encoder: repeated keys, names and values at the same attribute position, positions past the
// caches, more distinct keys than the slot table holds, more repeated values than one buffer has
// slots for, long and non-ASCII strings, and buffer growth.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testing } from './collector.mjs';

const { RecordWriter, recordsJson } = testing;

// A seeded generator, so a failure reproduces.
function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

const STRINGS = [
  '',
  'exact',
  'base-sepolia',
  '10000',
  'é',
  '€ 1,00',
  '支付结算',
  '🚀 settle',
  'x'.repeat(63),
  'y'.repeat(64),
  'long '.repeat(40),
  'ü'.repeat(70),
];

function randomValue(r, depth) {
  switch (r.int(depth > 2 ? 8 : 11)) {
    case 0:
    case 1:
      return r.pick(STRINGS);
    case 2:
      return `v${r.int(1000)}`;
    case 3:
      return r.int(2) === 1;
    case 4:
      return r.pick([0, -1, 1, 127, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1), r.int(1e6)]);
    case 5:
      return r.pick([0.5, -1.25, 1e300, Number.MIN_VALUE, Math.PI]);
    case 6:
      return r.pick([0n, -5n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n + 7n]);
    case 7:
      return Uint8Array.from({ length: r.int(5) }, () => r.int(256));
    case 8:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    case 9:
      return Object.fromEntries(Array.from({ length: r.int(3) }, (_, i) => [`m${i}`, randomValue(r, depth + 1)]));
    default:
      return ['deep', [[[[[[[[['bottom']]]]]]]]]];
  }
}

const hex = (ws) => ws.map((w) => (w >>> 0).toString(16).padStart(8, '0')).join('');

/** What the core must decode `v` (at nesting `depth`) to, in recordsJson's notation. */
function expectValue(v, depth) {
  if (typeof v === 'string') return { s: v };
  if (typeof v === 'boolean') return { b: v };
  if (typeof v === 'number') return Number.isSafeInteger(v) ? { i: String(v) } : { d: v };
  if (typeof v === 'bigint') return { i: BigInt.asIntN(64, v).toString() };
  if (depth >= 8) return { s: '[nested too deep]' };
  if (v instanceof Uint8Array) return { x: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return { a: v.map((x) => expectValue(x == null ? '' : x, depth + 1)) };
  return {
    m: Object.entries(v)
      .filter(([, x]) => x != null)
      .map(([k, x]) => [k, expectValue(x, depth + 1)]),
  };
}

const expectAttrs = (kv, n = kv ? kv.length : 0) => {
  const out = [];
  for (let i = 0; i < n; i += 2) out.push([kv[i], expectValue(kv[i + 1], 0)]);
  return out;
};

function expectSpan(s, anchorNs) {
  const x = s.x || { droppedAttrs: 0, events: null, droppedEvents: 0, links: null, droppedLinks: 0, statusMessage: '' };
  const ns = (ms) => (anchorNs + BigInt(Math.round(ms * 1e6))).toString();
  const parent = s.p0 === 0 && s.p1 === 0 ? null : hex([s.p0, s.p1]);
  return {
    traceId: hex([s.t0, s.t1, s.t2, s.t3]),
    spanId: hex([s.s0, s.s1]),
    parentSpanId: parent,
    flags: s.flags,
    name: s.name,
    kind: s.kind,
    start: ns(s.start),
    end: ns(s.end_),
    traceState: s.traceState,
    status: [s.statusCode, x.statusMessage],
    attributes: expectAttrs(s.attrs, s.na),
    droppedAttributes: x.droppedAttrs,
    events: (x.events || []).map((e) => [e.name, ns(e.time), expectAttrs(e.attrs), e.dropped]),
    droppedEvents: x.droppedEvents,
    links: (x.links || []).map((l) => [
      hex([l.t0, l.t1, l.t2, l.t3]),
      hex([l.s0, l.s1]),
      l.flags,
      l.traceState,
      expectAttrs(l.attrs),
      l.dropped,
    ]),
    droppedLinks: x.droppedLinks,
  };
}

const word = (r) => (r.int(0xffffffff) + 1) >>> 0;

/** A span object shaped like bindings-js's Span (rare parts in `x`), with `attrs` from `makeAttrs`. */
function randomSpan(r, i, makeAttrs) {
  const rare = r.int(8) === 0;
  const start = r.int(1e9) / 1e6;
  const made = makeAttrs(i);
  // Entries past `na` are spare room (a Span preallocates it) and must not be written.
  const attrs = made && r.int(2) ? [...made, 'spare', 'not written', undefined, undefined] : made;
  return {
    t0: word(r),
    t1: word(r),
    t2: word(r),
    t3: word(r),
    s0: word(r),
    s1: word(r),
    p0: r.int(3) === 0 ? 0 : word(r),
    p1: r.int(3) === 0 ? 0 : word(r),
    flags: r.pick([0, 1, 0x101, 0x301]),
    kind: r.int(6),
    statusCode: r.int(3),
    start,
    end_: start + r.int(1e7) / 1e6,
    name: r.int(4) === 0 ? `name-${r.int(50)}` : r.pick(['settle', 'verify', '结算']),
    traceState: rare && r.int(2) === 0 ? 'vendor=a,other=b' : '',
    attrs,
    na: made ? made.length : 0,
    x: rare
      ? {
          statusMessage: r.pick(STRINGS),
          droppedAttrs: r.int(2),
          events: r.int(2)
            ? [
                {
                  name: r.pick(['retry', 'exception']),
                  time: start + 1,
                  attrs: ['attempt', r.int(5), 'why', 'timeout'],
                  dropped: 0,
                },
              ]
            : null,
          droppedEvents: r.int(2),
          links: r.int(2)
            ? [
                {
                  t0: word(r),
                  t1: word(r),
                  t2: word(r),
                  t3: word(r),
                  s0: word(r),
                  s1: word(r),
                  flags: 1,
                  traceState: '',
                  attrs: null,
                  dropped: 2,
                },
              ]
            : null,
          droppedLinks: r.int(2),
        }
      : null,
  };
}

function roundTrip(writer, anchorNs, spans, sampledOut) {
  const bytes = writer.write(spans, sampledOut);
  const got = recordsJson(bytes);
  assert.equal(got.sampledOut, sampledOut);
  assert.equal(got.spans.length, spans.length);
  for (let i = 0; i < spans.length; i++) assert.deepEqual(got.spans[i], expectSpan(spans[i], anchorNs), `span ${i}`);
  return bytes.length;
}

const ANCHOR_MS = 1_763_900_000_123.4568;
// The writer encodes the anchor's whole ms and fraction apart, to the ns of the double it is given
// (…123.456787109375 ms); one product ANCHOR_MS × 1e6 would round it to a multiple of 256 ns.
const anchorNs = BigInt(Math.floor(ANCHOR_MS)) * 1_000_000n + BigInt(Math.round((ANCHOR_MS % 1) * 1e6));
assert.equal(anchorNs, 1_763_900_000_123_456_787n);

test('a whole-ms anchor, as on Workers (unix-ms clock), is encoded exactly and keeps span times on the ms', () => {
  const writer = new RecordWriter(1_796_334_523_155);
  const span = randomSpan(rng(3), 0, () => null);
  Object.assign(span, { start: 5, end_: 7, x: null });
  const [got] = recordsJson(writer.write([span], 0)).spans;
  assert.equal(got.start, '1796334523160000000');
  assert.equal(got.end, '1796334523162000000');
});

test('randomized spans of every field and value type decode exactly as written', () => {
  const r = rng(20261123);
  const writer = new RecordWriter(ANCHOR_MS);
  // The same code path sets the same keys, often with the same values: the encoder's caches.
  const shape = (i) => {
    const n = r.int(40); // past the 32 cached positions sometimes
    const kv = [];
    for (let k = 0; k < n; k++) {
      kv.push(r.int(10) === 0 ? `rare.${r.int(100)}` : `x402.k${k}`);
      kv.push(r.int(3) === 0 ? randomValue(r, 0) : `same-${k}-${i % 3 === 0 ? 'a' : 'b'}`);
    }
    return kv.length ? kv : null;
  };
  for (let buffer = 0; buffer < 40; buffer++) {
    const spans = Array.from({ length: r.int(300) }, (_, i) => randomSpan(r, i, shape));
    roundTrip(writer, anchorNs, spans, r.int(3) === 0 ? r.int(100000) : 0);
  }
});

test('more distinct keys than the slot table holds still decode (as literals past the bound)', () => {
  const r = rng(7);
  const writer = new RecordWriter(ANCHOR_MS);
  let next = 0;
  for (let buffer = 0; buffer < 12; buffer++) {
    const spans = Array.from({ length: 100 }, (_, i) =>
      randomSpan(r, i, () => {
        const kv = [];
        for (let k = 0; k < 5; k++) kv.push(`key.${next++}`, k);
        return kv;
      }),
    );
    roundTrip(writer, anchorNs, spans, 0);
  }
  assert.ok(next > 4096 + 1000, `${next} distinct keys`);
});

test('more repeated values than one buffer has slots for, and a buffer far past its initial size', () => {
  const r = rng(99);
  const writer = new RecordWriter(ANCHOR_MS);
  // Each value appears at the same position in two consecutive spans: one slot definition per pair.
  const spans = Array.from({ length: 4200 }, (_, i) =>
    randomSpan(r, i, () => {
      const kv = [];
      for (let k = 0; k < 32; k++) kv.push(`k${k}`, `value-${i >> 1}-${k}`);
      return kv;
    }),
  );
  const size = roundTrip(writer, anchorNs, spans, 0);
  assert.ok(size > 1 << 20, `${size} bytes`);
});
