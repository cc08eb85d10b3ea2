// Bundles the JS layer (lib/ + ../bindings-js) into dist/index.cjs and copies the ESM entry. The
// native loader (dist/native.cjs, from `napi build`) stays a separate file.
//
// `node scripts/build-js.mjs --testing <dir>` bundles lib/testing.js into <dir>/testing.cjs instead:
// the test entry points, for an addon built with feature `testing` into <dir>. They are never in
// dist/, so never in the packed package.
import { build } from 'esbuild';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  external: ['./native.cjs'],
  logLevel: 'warning',
};
const at = process.argv.indexOf('--testing');
if (at >= 0) {
  await build({ ...common, entryPoints: ['lib/testing.js'], outfile: join(process.argv[at + 1], 'testing.cjs') });
} else {
  await build({ ...common, entryPoints: ['lib/index.js'], outfile: 'dist/index.cjs' });
  copyFileSync('lib/index.mjs', 'dist/index.mjs');
  // The types of the shared layer's `audit` (index.d.ts re-exports them).
  copyFileSync('../bindings-js/src/audit.d.ts', 'dist/audit.d.ts');
}
