// Bundles the JS layer (lib/ + ../bindings-js) into dist/index.cjs and dist/testing.cjs, and copies
// the ESM entry. The native loader (dist/native.cjs, from `napi build`) stays a separate file.
import { build } from 'esbuild';
import { copyFileSync } from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  external: ['./native.cjs'],
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['lib/index.js'], outfile: 'dist/index.cjs' });
await build({ ...common, entryPoints: ['lib/testing.js'], outfile: 'dist/testing.cjs' });
copyFileSync('lib/index.mjs', 'dist/index.mjs');
