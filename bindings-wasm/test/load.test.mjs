// Every JS file of the installed package (entries, wasm-bindgen glue, the shared layer) loads with no
// randomness, timers or I/O at module scope — what Cloudflare Workers require (issue 18: ids.js
// seeded its generator at import and the worker never started). tests/js/load-guard.mjs forbids
// those calls while the modules load; the control cases prove that it catches them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './helpers.mjs';

const run = promisify(execFile);
const GUARD = join(ROOT, 'tests', 'js', 'load-guard.mjs');
const INSTALLED = join(ROOT, 'bindings-wasm', 'node_modules', 'tracex-wasm');

async function guardedLoad(specs, cwd = ROOT) {
  const { stdout } = await run(process.execPath, [GUARD, ...specs], { cwd });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

function jsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

test('the guard catches forbidden calls at load, including swallowed ones', async () => {
  const seeds = 'data:text/javascript,crypto.getRandomValues(new Uint32Array(4))';
  const swallows = 'data:text/javascript,try{setTimeout(()=>{},1)}catch{}';
  const fetches = 'data:text/javascript,try{fetch("http://127.0.0.1:9/")}catch{}';
  const r = await guardedLoad([seeds, swallows, fetches]);
  assert.deepEqual(r.loaded, [swallows, fetches]);
  assert.equal(r.failed.length, 1);
  assert.match(r.failed[0].error, /Disallowed operation called within global scope: crypto\.getRandomValues/);
  assert.deepEqual(r.calls, ['crypto.getRandomValues', 'setTimeout', 'fetch']);
});

test('every module of the installed package loads without randomness, timers or network I/O', async () => {
  const files = jsFiles(INSTALLED);
  const names = files.map((f) => relative(INSTALLED, f));
  // The entries, the glue and the whole shared layer must all be covered.
  for (const f of [
    'index.js',
    'node.js',
    'platform.js',
    'tracex_wasm.js',
    'shared/index.js',
    'shared/ids.js',
    'shared/tracer.js',
  ]) {
    assert.ok(names.includes(f), `${f} is in the package`);
  }
  // The universal entry first, alone, as workerd loads it; then the rest, node.js included: it
  // reads and instantiates the .wasm at import (file I/O, which Node allows; Workers resolve the
  // `workerd`/`worker` condition and never load it), but must not draw randomness or start timers.
  const order = ['index.js', ...names.filter((n) => n !== 'index.js')];
  const r = await guardedLoad(order.map((n) => join(INSTALLED, n)));
  assert.deepEqual(r.failed, []);
  assert.deepEqual(r.calls, []);
  assert.deepEqual(r.loaded.length, files.length);
});

test('`await init(wasm)` at module scope, as the edge example does, makes no forbidden call and compiles the first-request code', async () => {
  // init instantiates the module and runs its warm-up (src/warm.rs) while the guard is armed: a
  // warm-up that drew randomness would throw here, and init swallows warm-up errors, so the
  // guard's record of calls is what proves it clean.
  const bytes = join(INSTALLED, 'tracex_wasm_bg.wasm');
  const entry = pathToFileURL(join(INSTALLED, 'index.js')).href;
  const glue = pathToFileURL(join(INSTALLED, 'tracex_wasm.js')).href;
  const worker =
    'data:text/javascript,' +
    encodeURIComponent(
      `import { init } from ${JSON.stringify(entry)}; import { readFileSync } from 'node:fs';` +
        `await init(readFileSync(${JSON.stringify(bytes)}));`,
    );
  const r = await guardedLoad([worker]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(r.calls, []);
  assert.deepEqual(r.loaded, [worker]);
  // The warm-up seals a sample batch to the vectors' 3072-bit key (header + wrapped key + payload),
  // and records its JS spans on fixed ids: afterwards ids are random again, so two processes that
  // ran init draw different ones.
  const ids = pathToFileURL(join(INSTALLED, 'shared', 'ids.js')).href;
  const afterInit = async () => {
    const { stdout } = await run(process.execPath, [
      '--input-type=module',
      '-e',
      `import { init } from ${JSON.stringify(entry)}; import { warmUp } from ${JSON.stringify(glue)};` +
        `import { word } from ${JSON.stringify(ids)}; import { readFileSync } from 'node:fs';` +
        `await init(readFileSync(${JSON.stringify(bytes)}));` +
        `console.log(JSON.stringify([warmUp(), word(), word(), word(), word()]));`,
    ]);
    return JSON.parse(stdout);
  };
  const [a, b] = await Promise.all([afterInit(), afterInit()]);
  assert.ok(a[0] > 600, `warmUp() sealed ${a[0]} bytes`);
  assert.notDeepEqual(a.slice(1), b.slice(1), 'ids after init repeat across processes');
});

test("init's warm-up runs the data-key wrap through a stand-in for crypto.subtle: the first request does not compile it", async () => {
  // warmUpWrap (src/warm.rs) is what init calls with a stand-in that answers at once; here the
  // stand-in records its calls, so the test sees the wrap path run: the collector key imported
  // (SPKI, RSA-OAEP-SHA-256) and a 32-byte all-zero data key encrypted. Its empty "wrapped" key
  // is refused by the throwaway tracer, and the promise resolves.
  const bytes = join(INSTALLED, 'tracex_wasm_bg.wasm');
  const entry = pathToFileURL(join(INSTALLED, 'index.js')).href;
  const glue = pathToFileURL(join(INSTALLED, 'tracex_wasm.js')).href;
  const { stdout } = await run(process.execPath, [
    '--input-type=module',
    '-e',
    `import { init } from ${JSON.stringify(entry)}; import { warmUpWrap } from ${JSON.stringify(glue)};` +
      `import { readFileSync } from 'node:fs';` +
      `await init(readFileSync(${JSON.stringify(bytes)}));` +
      'const calls = [];' +
      'await warmUpWrap({' +
      '  importKey: async (format, der, alg, extractable, usages) => { calls.push(["importKey", format, der.length, alg, extractable, usages]); return {}; },' +
      '  encrypt: async (alg, key, plain) => { calls.push(["encrypt", alg, plain.length, plain.every((b) => b === 0)]); return new ArrayBuffer(0); },' +
      '});' +
      'console.log(JSON.stringify(calls));',
  ]);
  const pem = readFileSync(join(ROOT, 'tests', 'vectors', 'collector-test-key.pub.pem'), 'utf8');
  const spkiLength = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64').length;
  const alg = { name: 'RSA-OAEP', hash: 'SHA-256' };
  assert.deepEqual(JSON.parse(stdout), [
    ['importKey', 'spki', spkiLength, alg, false, ['encrypt']],
    ['encrypt', alg, 32, true],
  ]);
});

test('ids are seeded on first use: spans started after a guarded load get distinct random ids', async () => {
  // After the guard is lifted, the first draw seeds from WebCrypto; two fresh processes must not
  // produce the same ids (a generator left unseeded would start from the all-zero state).
  const script = `
    const ids = await import(${JSON.stringify(join(INSTALLED, 'shared', 'ids.js'))});
    const words = Array.from({ length: 130 }, () => ids.word());
    console.log(JSON.stringify(words));`;
  const draw = async () => JSON.parse((await run(process.execPath, ['--input-type=module', '-e', script])).stdout);
  const [a, b] = await Promise.all([draw(), draw()]);
  assert.equal(a.length, 130); // crosses two pool refills
  assert.notDeepEqual(a, b);
  assert.ok(new Set(a).size > 120, 'words repeat');
});
