// Imports modules the way Cloudflare Workers load them: with randomness, timers and I/O forbidden
// while module code runs ("Disallowed operation called within global scope"). Node enforces no such
// rule, so without this a module that seeds, schedules or fetches at load passes every Node test and
// then cannot be loaded on the edge at all (issue 18).
//
//   node tests/js/load-guard.mjs FILE_OR_URL...
//
// Arms the guard, imports each file (a path, relative to the current directory) or URL in turn,
// disarms it, then prints one JSON line:
//   { loaded: [specifier, …], failed: [{ specifier, error }], calls: [label, …] }
// `calls` lists every forbidden call made while the guard was armed, even one that the module
// caught and swallowed. Exits 0 whatever happened; the test asserts on the JSON.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';

const calls = [];
const restore = [];

function trap(owner, name, label) {
  if (owner == null) return;
  const original = owner[name];
  if (typeof original !== 'function') return;
  const guarded = () => {
    calls.push(label);
    throw new Error(`Disallowed operation called within global scope: ${label}`);
  };
  Object.defineProperty(owner, name, { value: guarded, configurable: true, writable: true });
  restore.push(() => Object.defineProperty(owner, name, { value: original, configurable: true, writable: true }));
}

// What Workers refuse outside a handler: random values, timers, and I/O (fetch). Math.random and
// Node's own CSPRNG are trapped too: drawing from them at load is the same mistake in another form.
const c = globalThis.crypto;
trap(c, 'getRandomValues', 'crypto.getRandomValues');
trap(c, 'randomUUID', 'crypto.randomUUID');
for (const m of [
  'encrypt',
  'decrypt',
  'sign',
  'verify',
  'digest',
  'generateKey',
  'importKey',
  'exportKey',
  'deriveKey',
  'deriveBits',
  'wrapKey',
  'unwrapKey',
]) {
  trap(c?.subtle, m, `crypto.subtle.${m}`);
}
trap(Math, 'random', 'Math.random');
for (const t of ['setTimeout', 'setInterval', 'setImmediate', 'fetch']) trap(globalThis, t, t);
const nodeCrypto = await import('node:crypto');
for (const m of ['randomBytes', 'randomFillSync', 'randomFill', 'randomInt', 'randomUUID']) {
  trap(nodeCrypto.default, m, `node:crypto.${m}`);
}
syncBuiltinESMExports(); // so `import { randomBytes } from 'node:crypto'` sees the trap too

const loaded = [];
const failed = [];
for (const spec of process.argv.slice(2)) {
  const target = /^[a-z]+:/.test(spec) ? spec : pathToFileURL(resolve(spec)).href;
  try {
    await import(target);
    loaded.push(spec);
  } catch (e) {
    failed.push({ specifier: spec, error: String(e?.stack ? e.stack : e) });
  }
}
for (const undo of restore.reverse()) undo();
syncBuiltinESMExports();
console.log(JSON.stringify({ loaded, failed, calls }));
