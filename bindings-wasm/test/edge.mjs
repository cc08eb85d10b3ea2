// Shared by the real-runtime tests (workerd, Deno, Bun): where the runtimes installed from npm are,
// x402 verification requests for examples/edge-worker, and reading a whole service's spans back
// from the collector.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, flatten } from './helpers.mjs';

const BIN = join(ROOT, 'bindings-wasm', 'node_modules', '.bin');
export const WORKERD = process.env.TRACEX_WORKERD ?? join(BIN, 'workerd');
export const DENO = process.env.TRACEX_DENO ?? join(BIN, 'deno');
export const BUN = process.env.TRACEX_BUN ?? join(BIN, 'bun');

export const PAYER = '0x857b06519E91e3A54538791bDbb0E22373e36b66';
export const REQUIREMENTS = {
  scheme: 'exact',
  network: 'base',
  maxAmountRequired: '10000',
  asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
  payTo: '0x209693Bc6afc0C5328bA36FaF03C514EF312287C',
};

/** The JSON body of a `POST /verify` paying `value` with the given 32-byte `nonce` (hex, no 0x). */
export function verifyBody(value, nonce) {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({
    x402Version: 1,
    paymentRequirements: REQUIREMENTS,
    paymentPayload: {
      x402Version: 1,
      scheme: 'exact',
      network: 'base',
      payload: {
        signature: '0x…',
        authorization: {
          from: PAYER,
          to: REQUIREMENTS.payTo,
          value,
          validAfter: String(now - 60),
          validBefore: String(now + 600),
          nonce: `0x${nonce}`,
        },
      },
    },
  });
}

/** Every stored span of `service`'s traces (paging the list, then each trace), root first per trace. */
export async function spansOf(collector, service) {
  const ids = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ service, limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const r = await fetch(`${collector.url}/api/v1/traces?${q}`, {
      headers: { authorization: `Bearer ${collector.readKey}` },
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`list traces: HTTP ${r.status} ${JSON.stringify(body)}`);
    ids.push(...body.traces.map((t) => t.trace_id));
    cursor = body.next_cursor;
  } while (cursor);
  const spans = [];
  for (const id of ids) {
    const { status, body } = await collector.trace(id);
    if (status !== 200) throw new Error(`trace ${id}: HTTP ${status}`);
    spans.push(...flatten(body.spans));
  }
  return spans;
}

/** Polls `spansOf` until `count` spans are stored (or `timeoutMs`), then returns what is stored. */
export async function waitForSpans(collector, service, count, timeoutMs = 20000) {
  const until = Date.now() + timeoutMs;
  let spans = [];
  while (Date.now() < until) {
    spans = await spansOf(collector, service);
    if (spans.length >= count) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Extra spans would be a bug too: give stragglers a moment, then read the final set.
  await new Promise((r) => setTimeout(r, 300));
  return spansOf(collector, service);
}

/** Runs `cmd args` to completion; resolves `{ code, stdout, stderr }` (never rejects on exit code). */
export function runTool(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = options.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGKILL');
          stderr += `\n[killed after ${options.timeoutMs} ms]`;
        }, options.timeoutMs)
      : null;
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}
