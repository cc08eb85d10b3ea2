// The real collector (built with the `dashboard` feature) on a free loopback port with a throwaway
// data dir, and the real Rust SDK's demo (`tracex-demo`) sending sealed spans to it, or sealing them
// into files that a test posts itself (to lose one on the way, as a middlebox would).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const TARGET = process.env.CARGO_TARGET_DIR ?? join(import.meta.dirname, '..', '..', 'target');
export const COLLECTOR_BIN = process.env.TRACEX_COLLECTOR_BIN ?? join(TARGET, 'debug', 'tracex-collector');
export const DEMO_BIN = process.env.TRACEX_DEMO_BIN ?? join(TARGET, 'debug', 'tracex-demo');

export async function startCollector() {
  const dataDir = mkdtempSync(join(tmpdir(), 'tracex-dashboard-test-'));
  const cli = (...args) => execFileSync(COLLECTOR_BIN, ['--data-dir', dataDir, ...args], { encoding: 'utf8' });
  const ingestKey = cli('apikey', 'create', '--project', 'demo', '--scope', 'ingest').trim();
  const readKey = cli('apikey', 'create', '--project', 'demo', '--scope', 'read').trim();
  const shown = cli('keys', 'show');
  const fingerprint = shown.match(/^fingerprint: ([0-9a-f]{64})$/m)[1];
  const publicKeyPem = `${shown.match(/-----BEGIN PUBLIC KEY-----[^-]+-----END PUBLIC KEY-----/)[0]}\n`;
  const child = spawn(COLLECTOR_BIN, ['--data-dir', dataDir, 'serve', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TRACEX_LOG: 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`collector exited (${code}): ${stderr}`)));
  });
  const url = line.match(/listening on (http:\/\/\S+)$/)?.[1];
  if (!url) throw new Error(`unexpected collector output: ${line}`);
  for (
    let i = 0;
    i < 200 &&
    !(await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  ) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    readKey,
    /** GET /api/v1/… with the read key. */
    api: (path) => fetch(`${url}/api/v1${path}`, { headers: { authorization: `Bearer ${readKey}` } }),
    /** Runs the demo to completion (it flushes on exit) and returns its output. */
    demo: async (...args) =>
      (
        await promisify(execFile)(DEMO_BIN, args, {
          env: {
            ...process.env,
            TRACEX_ENDPOINT: url,
            TRACEX_API_KEY: ingestKey,
            TRACEX_COLLECTOR_FINGERPRINT: fingerprint,
          },
        })
      ).stdout,
    /** Runs the demo without an endpoint: it seals its facilitator's spans for this collector
     * into files instead of sending them. Returns the sealed batches in sequence order. */
    async seal(...args) {
      const dir = mkdtempSync(join(tmpdir(), 'tracex-dashboard-sealed-'));
      try {
        writeFileSync(join(dir, 'collector.pem'), publicKeyPem);
        const env = { ...process.env };
        for (const k of ['TRACEX_ENDPOINT', 'TRACEX_API_KEY', 'TRACEX_COLLECTOR_FINGERPRINT']) delete env[k];
        const out = join(dir, 'batches');
        await promisify(execFile)(DEMO_BIN, [...args, '--out', out, '--public-key', join(dir, 'collector.pem')], {
          env,
        });
        return readdirSync(out)
          .sort()
          .map((f) => envelopeHeader(readFileSync(join(out, f))));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    /** POSTs one sealed batch as an SDK does; returns the HTTP status. */
    async send(batch) {
      const r = await fetch(`${url}/v1/batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/vnd.tracex.batch.v1' },
        body: batch.bytes,
      });
      await r.body?.cancel();
      return r.status;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The envelope header fields a gap report speaks of (docs/wire-format.md, "Envelope layout"). */
export function envelopeHeader(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.subarray(0, 4).toString('latin1') !== 'TRXB') throw new Error('not a tracex envelope');
  return {
    bytes,
    instanceId: bytes.subarray(54, 62).toString('hex'),
    sequence: Number(view.getBigUint64(62)),
    createdAtUnixNano: view.getBigUint64(70).toString(),
    sdkName: bytes.subarray(79, 79 + bytes[78]).toString('utf8'),
  };
}
