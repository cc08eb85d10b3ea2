// Test fixture: the real tracex-collector binary on a free loopback port with a temp data dir, and
// the installed `tracex` package (packed and installed into a temp project by scripts/test-node.sh).
// scripts/test-node.sh passes their paths in TRACEX_NODE_PROJECT, TRACEX_NODE_TESTING and
// TRACEX_COLLECTOR_BIN; without them (`npm test`) they default to what `scripts/test-node.sh
// --prepare`, npm test's pretest, leaves in bindings-node/.test-project/ and testing-dist/.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';

const here = new URL('.', import.meta.url).pathname;
export const repo = resolve(here, '../..');
// Set in process.env (not only here): some tests read TRACEX_NODE_TESTING, or pass the environment on.
const prepared = join(repo, 'bindings-node', '.test-project');
process.env.TRACEX_NODE_PROJECT ||= join(prepared, 'project');
process.env.TRACEX_NODE_TESTING ||= join(repo, 'bindings-node', 'testing-dist', 'testing.cjs');
process.env.TRACEX_COLLECTOR_BIN ||= join(prepared, 'tracex-collector');
for (const v of ['TRACEX_NODE_PROJECT', 'TRACEX_NODE_TESTING', 'TRACEX_COLLECTOR_BIN']) {
  if (!existsSync(process.env[v])) {
    throw new Error(
      `${v}: ${process.env[v]} does not exist: run \`npm test\` (its pretest builds) or scripts/test-node.sh`,
    );
  }
}
export const BIN = process.env.TRACEX_COLLECTOR_BIN;
/** The project the packed tarball is installed into. */
export const PROJECT = process.env.TRACEX_NODE_PROJECT;

/** The installed package, loaded through its `require` entry. */
export const tracex = createRequire(join(PROJECT, 'package.json'))('tracex');
/**
 * The test entry points: `testing.cjs` beside an addon built with feature `testing`
 * (`npm run build:testing`), never part of the installed package.
 */
export const testing = createRequire(import.meta.url)(process.env.TRACEX_NODE_TESTING);

function cli(dataDir, args) {
  return execFileSync(BIN, ['--data-dir', dataDir, ...args], { encoding: 'utf8' });
}

export async function startCollector(tag = 'node') {
  const dataDir = mkdtempSync(join(tmpdir(), `tracex-${tag}-`));
  const ingest = cli(dataDir, ['apikey', 'create', '--project', 'node-tests', '--scope', 'ingest']).trim();
  const read = cli(dataDir, ['apikey', 'create', '--project', 'node-tests', '--scope', 'read']).trim();
  const shown = cli(dataDir, ['keys', 'show']);
  const publicKey = shown.split('fingerprint:')[0];
  const fingerprint = /fingerprint: ([0-9a-f]{64})/.exec(shown)[1];
  let child;
  const serve = async (listen) => {
    child = spawn(BIN, ['--data-dir', dataDir, 'serve', '--listen', listen], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RUST_LOG: 'warn' },
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    return new Promise((ok, fail) => {
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) ok(m[1]);
      });
      child.once('exit', (code) => fail(new Error(`collector exited early (${code}): ${out}`)));
    });
  };
  const url = await serve('127.0.0.1:0');
  return {
    url,
    ingest,
    read,
    publicKey,
    fingerprint,
    dataDir,
    /** Options for a tracer that sends to this collector. */
    options(extra = {}) {
      return { endpoint: url, apiKey: ingest, collectorPublicKey: publicKey, serviceName: 'node-test', ...extra };
    },
    async get(path) {
      const r = await fetch(url + path, { headers: { authorization: `Bearer ${read}` } });
      const body = await r.json();
      if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(body)}`);
      return body;
    },
    /** Every span of a trace, flattened from the tree, keyed by name. */
    async trace(traceId) {
      const body = await this.get(`/api/v1/traces/${traceId}`);
      const spans = [];
      const walk = (n) => {
        spans.push(n);
        (n.children || []).forEach(walk);
      };
      body.spans.forEach(walk);
      return spans;
    },
    async traces(query = '') {
      const out = [];
      let cursor = '';
      for (;;) {
        const page = await this.get(`/api/v1/traces?limit=1000${query}${cursor ? `&cursor=${cursor}` : ''}`);
        out.push(...page.traces);
        if (!page.next_cursor) return out;
        cursor = page.next_cursor;
      }
    },
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
    /** Starts the stopped collector again: same data dir (keys, API keys, spans), same address. */
    async restart() {
      await serve(new URL(url).host);
    },
  };
}

/** An OTLP/JSON attribute list as a plain object (`intValue` strings become numbers). */
export function attrs(list) {
  const out = {};
  for (const { key, value } of list) out[key] = plain(value);
  return out;
}

function plain(v) {
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('bytesValue' in v) return Buffer.from(v.bytesValue, 'base64');
  if ('arrayValue' in v) return v.arrayValue.values.map(plain);
  if ('kvlistValue' in v) return attrs(v.kvlistValue.values);
  throw new Error(`unknown value ${JSON.stringify(v)}`);
}

export const vectorsDir = join(repo, 'tests/vectors');
export const readVectors = (file = 'envelope-v1.json') => JSON.parse(readFileSync(join(vectorsDir, file), 'utf8'));
