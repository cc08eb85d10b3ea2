// The released package carries no test-only code: the tarball installed by scripts/test-node.sh
// (the release build) has no `tracex/testing` entry and no testing bundle, and its addon exports
// none of the `testing` feature's functions — which the test build does export, so this check
// would see them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PROJECT, testing } from './collector.mjs';

const TEST_ONLY = [
  'vectorWrapKey',
  'vectorSeal',
  'vectorOpen',
  'vectorSpanNames',
  'coreSampled',
  'recordsJson',
  'coreError',
];
const installed = join(PROJECT, 'node_modules', 'tracex');
const require = createRequire(join(PROJECT, 'package.json'));

test('the installed package has no testing entry point or bundle', () => {
  assert.throws(
    () => require('tracex/testing'),
    (e) => e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  );
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './package.json']);
  const files = readdirSync(join(installed, 'dist'));
  assert.ok(files.includes('index.cjs') && files.some((f) => f.endsWith('.node')), files.join(' '));
  assert.ok(!files.some((f) => /testing/.test(f)), files.join(' '));
  assert.ok(!existsSync(join(installed, 'testing.d.ts')));
});

test('the released addon exports none of the test-only functions; the test build exports all', () => {
  const released = require(join(installed, 'dist', 'native.cjs'));
  assert.equal(typeof released.NativeTracer, 'function');
  for (const name of TEST_ONLY) assert.equal(released[name], undefined, `released addon exports ${name}`);
  const bundle = readFileSync(join(installed, 'dist', 'index.cjs'), 'utf8');
  for (const name of TEST_ONLY) assert.ok(!bundle.includes(name), `index.cjs mentions ${name}`);
  // napi registers exports by name: a test-only function would leave its name in the binary.
  const node = files(join(installed, 'dist')).find((f) => f.endsWith('.node'));
  const bytes = readFileSync(node);
  for (const name of TEST_ONLY) assert.equal(bytes.indexOf(name), -1, `${name} in ${node}`);
  const testBuild = createRequire(process.env.TRACEX_NODE_TESTING)('./native.cjs');
  for (const name of TEST_ONLY) assert.equal(typeof testBuild[name], 'function', `test build lacks ${name}`);
  assert.equal(typeof testing.vectorSeal, 'function');
});

function files(dir) {
  return readdirSync(dir).map((f) => join(dir, f));
}
