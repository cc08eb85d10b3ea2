// Bundles src/main.tsx (Preact, uPlot and the stylesheets) with esbuild into dist/: content-hashed
// assets under dist/assets/ (cached for good by the collector), an index.html naming them, and a
// gzip and a brotli twin of every file that the collector serves to browsers that accept them.
// Fails when the gzipped total exceeds the budget, so the dashboard cannot silently grow.
import { build } from 'esbuild';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const BUDGET_GZIP_BYTES = 300 * 1024;
const dist = new URL('./dist/', import.meta.url).pathname;
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'assets'), { recursive: true });

const result = await build({
  entryPoints: ['src/main.tsx'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: 'app-[hash]',
  outdir: join(dist, 'assets'),
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));

// The favicon is inline: a request for /favicon.ico would 404 and log a console error.
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>tracex</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%232563eb'/%3E%3Cpath d='M3 5h10M5 8h8M7 11h6' stroke='white' stroke-width='1.6'/%3E%3C/svg%3E">
${css ? `<link rel="stylesheet" href="/assets/${css}">` : ''}
<script type="module" src="/assets/${js}"></script>
</head>
<body><div id="app"><noscript>The tracex dashboard needs JavaScript.</noscript></div></body>
</html>
`;
writeFileSync(join(dist, 'index.html'), html);

let gzipTotal = 0;
const walk = (dir) =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : [join(dir, f)]));
for (const file of walk(dist)) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 });
  gzipTotal += gz.length;
  writeFileSync(`${file}.gz`, gz);
  writeFileSync(`${file}.br`, brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
  console.log(
    `${file.slice(dist.length).padEnd(32)} ${String(raw.length).padStart(8)} B  ${String(gz.length).padStart(7)} B gzip`,
  );
}
console.log(`total gzip ${(gzipTotal / 1024).toFixed(1)} KiB (budget ${BUDGET_GZIP_BYTES / 1024} KiB)`);
if (gzipTotal > BUDGET_GZIP_BYTES) {
  console.error('dashboard: over the size budget');
  process.exit(1);
}
