// Test helpers: the real collector binary on a free loopback port with a throwaway data dir (as
// collector/tests/common/mod.rs starts it), its CLI, its query API, and a minimal span record buffer
// writer (docs/record-buffer.md) for driving the backend directly.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PKG = join(ROOT, 'bindings-wasm', 'pkg');
export const COLLECTOR_BIN =
  process.env.TRACEX_COLLECTOR_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug', 'tracex-collector');

function cli(dataDir, ...args) {
  return execFileSync(COLLECTOR_BIN, ['--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Starts a collector; `corsOrigins` go to `--cors-origin`. Call `stop()` when done. */
export async function startCollector({ corsOrigins = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tracex-wasm-test-'));
  const ingestKey = cli(dataDir, 'apikey', 'create', '--project', 'wasm', '--scope', 'ingest').trim();
  const readKey = cli(dataDir, 'apikey', 'create', '--project', 'wasm', '--scope', 'read').trim();
  const shown = cli(dataDir, 'keys', 'show');
  const publicKeyPem = shown.split('fingerprint:')[0];
  const fingerprint = shown.match(/^fingerprint: ([0-9a-f]{64})$/m)[1];
  let child;
  const serve = async (listen) => {
    const args = ['--data-dir', dataDir, 'serve', '--listen', listen];
    for (const o of corsOrigins) args.push('--cors-origin', o);
    child = spawn(COLLECTOR_BIN, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TRACEX_LOG: 'warn' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const line = await new Promise((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`collector exited (${code}): ${stderr}`)));
    });
    const m = line.match(/^tracex-collector listening on (http:\/\/\S+)$/);
    if (!m) throw new Error(`unexpected collector output: ${line}`);
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`${m[1]}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return m[1];
  };
  const url = await serve('127.0.0.1:0');
  return {
    url,
    dataDir,
    ingestKey,
    readKey,
    publicKeyPem,
    fingerprint,
    async trace(traceId) {
      const r = await fetch(`${url}/api/v1/traces/${traceId}`, { headers: { authorization: `Bearer ${readKey}` } });
      return { status: r.status, body: await r.json() };
    },
    /** Stops the collector; `keep` leaves its data dir for `restart()`. */
    async stop({ keep = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!keep) rmSync(dataDir, { recursive: true, force: true });
    },
    /** Starts the stopped collector again: same data dir (keys, API keys, spans), same address. */
    async restart() {
      await serve(new URL(url).host);
    },
  };
}

/** Every span of a trace tree, depth first. */
export function flatten(spans, out = []) {
  for (const s of spans) {
    out.push(s);
    flatten(s.children ?? [], out);
  }
  return out;
}

/** OTLP/JSON attributes as a plain object of OTLP/JSON values. */
export function attrs(list) {
  return Object.fromEntries(list.map((kv) => [kv.key, kv.value]));
}

export const hex = (b) => Buffer.from(b).toString('hex');
export const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
export const newTraceId = () => new Uint8Array(randomBytes(16));
export const newSpanId = () => new Uint8Array(randomBytes(8));

// === a minimal record buffer writer (literal strings; strings, bools, ints and doubles) ===

class Writer {
  constructor() {
    this.parts = [];
  }
  bytes(b) {
    this.parts.push(Buffer.from(b));
  }
  u8(n) {
    this.parts.push(Buffer.from([n]));
  }
  varint(n) {
    let v = BigInt(n);
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      out.push(byte);
    } while (v > 0n);
    this.bytes(out);
  }
  f64(x) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(x);
    this.bytes(b);
  }
  u64(x) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(x));
    this.bytes(b);
  }
  i64(x) {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(x));
    this.bytes(b);
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length * 2);
    this.bytes(b);
  }
  value(v) {
    if (typeof v === 'string') {
      this.u8(0);
      this.str(v);
    } else if (typeof v === 'boolean') this.u8(v ? 2 : 1);
    else if (typeof v === 'bigint' || Number.isInteger(v)) {
      this.u8(3);
      this.i64(v);
    } else {
      this.u8(4);
      this.f64(v);
    }
  }
  finish() {
    return new Uint8Array(Buffer.concat(this.parts));
  }
}

/**
 * A record buffer of finished spans: `{ traceId, spanId, parentSpanId?, name, kind?, status?,
 * statusMessage?, startMs, endMs, attributes }`, times in ms relative to `anchorNs` (unix ns, BigInt).
 */
export function recordBuffer(spans, { anchorNs = BigInt(Date.now()) * 1_000_000n, sampledOut = 0 } = {}) {
  const w = new Writer();
  w.bytes(Buffer.from('TXR1'));
  w.u64(anchorNs);
  w.varint(sampledOut);
  w.varint(spans.length);
  for (const s of spans) {
    w.bytes(s.traceId);
    w.bytes(s.spanId);
    w.bytes(s.parentSpanId ?? new Uint8Array(8));
    w.varint(0x101); // sampled; parent remoteness known, not remote
    w.u8(s.kind ?? 1);
    w.u8(s.status ?? 0);
    w.f64(s.startMs);
    w.f64(s.endMs);
    w.str(s.name);
    w.str('');
    w.str(s.statusMessage ?? '');
    const entries = Object.entries(s.attributes ?? {});
    w.varint(entries.length);
    for (const [k, v] of entries) {
      w.str(k);
      w.value(v);
    }
    w.varint(0); // dropped attributes
    w.varint(0); // events
    w.varint(0); // dropped events
    w.varint(0); // links
    w.varint(0); // dropped links
  }
  return w.finish();
}

export const vectors = (file = 'envelope-v1.json') =>
  JSON.parse(readFileSync(join(ROOT, 'tests', 'vectors', file), 'utf8'));

/** The package as installed next to the tests (the packed release tarball). */
export const INSTALLED = join(ROOT, 'bindings-wasm', 'node_modules', 'tracex-wasm');

/**
 * The test build's wasm-bindgen module (scripts/build-wasm.sh --testing → pkg-testing/), with the
 * vector helpers the published package does not have; instantiated on first use.
 */
export async function testBuild() {
  const dir = join(ROOT, 'bindings-wasm', 'pkg-testing');
  const mod = await import(join(dir, 'tracex_wasm.js'));
  mod.initSync({ module: readFileSync(join(dir, 'tracex_wasm_bg.wasm')) });
  return mod;
}
export const testKeyPem = () => readFileSync(join(ROOT, 'tests', 'vectors', 'collector-test-key.pub.pem'), 'utf8');
