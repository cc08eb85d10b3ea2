// The dashboard's pure parts, compiled from the TypeScript sources by esbuild (as the bundle is):
// the SSE parser the live tail reads with, the waterfall's subtree, collapse and critical-path
// computations, and the audit page's checkpoint parser and gap counts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { build } from 'esbuild';

const dir = mkdtempSync(join(tmpdir(), 'tracex-dashboard-units-'));
after(() => rmSync(dir, { recursive: true, force: true }));
async function load(entry) {
  const outfile = join(dir, `${entry.replaceAll('/', '_')}.mjs`);
  await build({
    entryPoints: [join(import.meta.dirname, '..', 'src', entry)],
    bundle: true,
    format: 'esm',
    outfile,
    logLevel: 'error',
  });
  return import(outfile);
}

test('SSE: events split across chunks, comments, CRLF, multi-line data', async () => {
  const { SseParser } = await load('sse.ts');
  const p = new SseParser();
  assert.deepEqual(p.push(': keep-alive\n\nevent: spa'), []);
  assert.deepEqual(p.push('ns\ndata: {"spans":[]}\n'), []);
  assert.deepEqual(p.push('\nevent: lagged\r\ndata: {"missed":3}\r\n\r\ndata:a\ndata: b\n\n'), [
    { event: 'spans', data: '{"spans":[]}' },
    { event: 'lagged', data: '{"missed":3}' },
    { event: 'message', data: 'a\nb' },
  ]);
});

const span = (id, depth, startMs, durMs, code = 'ok') => ({
  span_id: id,
  depth,
  start_time_unix_nano: String(1_700_000_000_000_000_000n + BigInt(startMs) * 1_000_000n),
  duration_ns: durMs * 1e6,
  status: { code, message: '' },
});

test('waterfall: subtrees, collapsing, and the critical path', async () => {
  const { rowsOf, visibleRows, criticalPath } = await load('waterfall.ts');
  // root ─┬ verify ── sig        (0-40, sig 5-10)
  //       └ settle ─┬ rpc (fail) (50-150)
  //                 ├ rpc        (150-200)
  //                 └ receipt    (200-900)
  // plus a concurrent short side call inside settle (60-70) that the end never waited on
  const spans = [
    span('root', 0, 0, 1000),
    span('verify', 1, 0, 40),
    span('sig', 2, 5, 5),
    span('settle', 1, 50, 950),
    span('rpc1', 2, 50, 100, 'error'),
    span('side', 2, 60, 10),
    span('rpc2', 2, 150, 50),
    span('receipt', 2, 200, 700),
  ];
  const { rows, total } = rowsOf(spans);
  assert.equal(total, 1000);
  assert.deepEqual(
    rows.map((r) => r.end),
    [8, 3, 3, 8, 5, 6, 7, 8],
  );
  assert.equal(rows[4].error, true);
  assert.deepEqual(visibleRows(rows, new Set([3])), [0, 1, 2, 3]);
  assert.deepEqual(visibleRows(rows, new Set([0])), [0]);
  const path = [...criticalPath(rows)].map((i) => spans[i].span_id).sort();
  assert.deepEqual(path, ['receipt', 'root', 'rpc1', 'rpc2', 'settle', 'sig', 'verify'].sort());
});

test('audit: a checkpoint note is read, anything else refused', async () => {
  const { parseCheckpoint } = await load('audit.ts');
  const root = 'n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=';
  const note = `tracex-da0ed25b\n42\n${root}\n\n\u2014 tracex-da0ed25b AbCd\n\u2014 witness-1 EfGh\n`;
  assert.deepEqual(parseCheckpoint(note), {
    origin: 'tracex-da0ed25b',
    size: 42,
    root,
    signers: ['tracex-da0ed25b', 'witness-1'],
  });
  assert.throws(() => parseCheckpoint(`tracex-da0ed25b\n42\n${root}\n`), /not a signed note/);
  assert.throws(() => parseCheckpoint(`tracex-da0ed25b\nmany\n${root}\n\n\u2014 k AbCd\n`), /tree size/);
  assert.throws(() => parseCheckpoint(`tracex-da0ed25b\n42\n${root}\n\n`), /no signature/);
});

test('audit: the badge counts missing batches and reused numbers', async () => {
  const { summarize, sequenceRange } = await load('audit.ts');
  const instance = (missing, reused) => ({
    missing_total: missing,
    reused: Array.from({ length: reused }, () => ({})),
  });
  assert.deepEqual(summarize(undefined), { missing: 0, reused: 0, instances: 0 });
  assert.deepEqual(summarize({ instances: [instance(3, 0), instance(0, 2), instance(0, 0)] }), {
    missing: 3,
    reused: 2,
    instances: 2,
  });
  assert.equal(sequenceRange(5, 5), '#5');
  assert.equal(sequenceRange(2, 3), '#2–#3');
});

test('Live: spans queued between frames come out newest first, kept to the limit', async () => {
  const { LiveBuffer } = await load('live_rows.ts');
  const span = (n) => ({ span_id: `s${n}` });
  const ids = (spans) => spans.map((s) => s.span_id).join(' ');
  const b = new LiveBuffer(4);
  assert.deepEqual(b.take(), []);
  b.add([span(1), span(2)]);
  b.add([span(3)]);
  assert.equal(ids(b.take()), 's3 s2 s1');
  assert.equal(ids(b.kept), 's3 s2 s1');
  b.add([span(4), span(5)]);
  assert.equal(ids(b.take()), 's5 s4');
  assert.equal(ids(b.kept), 's5 s4 s3 s2', 'the oldest goes past the limit');
  // A hidden tab gets no frames: only the newest `keep` spans wait.
  b.add([1, 2, 3, 4, 5, 6, 7].map(span));
  assert.equal(ids(b.take()), 's7 s6 s5 s4');
  assert.equal(ids(b.kept), 's7 s6 s5 s4');
});
