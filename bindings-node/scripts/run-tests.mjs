// `npm test`: node --test over test/*.test.mjs, one file at a time (each starts its own collector).
// Arguments are passed on, options before files, so that these work:
//   npm test -- --test-name-pattern='round-trip'     one test by name (use the `=` form)
//   npm test -- test/tracer.test.mjs                 one file
// The pretest (scripts/test-node.sh --prepare) has built and installed what the tests load.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const options = args.filter((a) => a.startsWith('-'));
let files = args.filter((a) => !a.startsWith('-'));
if (files.length === 0) {
  files = readdirSync('test')
    .filter((f) => f.endsWith('.test.mjs'))
    .sort()
    .map((f) => join('test', f));
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...options, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
