// The published package carries no test-only code: the packed tarball installed next to the tests
// exports none of the vector helpers, its wasm-bindgen glue does not know them, and its module does
// not export them — while the test build (pkg-testing/) does, so the check would see them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tracex from 'tracex-wasm';
import { INSTALLED, testBuild } from './helpers.mjs';

const TEST_ONLY = ['sealWithFixedInputs', 'openWithDataKey', 'coreError'];

test('the installed package exports no test-only function', async () => {
  for (const name of TEST_ONLY) assert.equal(tracex[name], undefined, name);
  const glue = readFileSync(join(INSTALLED, 'tracex_wasm.js'), 'utf8');
  for (const name of TEST_ONLY) assert.ok(!glue.includes(name), `tracex_wasm.js mentions ${name}`);
  const exports = WebAssembly.Module.exports(
    new WebAssembly.Module(readFileSync(join(INSTALLED, 'tracex_wasm_bg.wasm'))),
  ).map((e) => e.name);
  assert.ok(exports.includes('nativetracer_new'), exports.join(' '));
  for (const snake of ['sealwithfixedinputs', 'openwithdatakey', 'coreerror']) {
    assert.ok(!exports.some((e) => e.toLowerCase().replaceAll('_', '').includes(snake)), `${snake} exported`);
  }
  const testing = await testBuild();
  for (const name of TEST_ONLY) assert.equal(typeof testing[name], 'function', `test build lacks ${name}`);
});
