// Span and trace ids: 32-bit words from a xoshiro128** generator seeded from the platform's CSPRNG
// (WebCrypto / node:crypto), so starting a span costs no crypto call and no boundary crossing.
// Ids are unique identifiers, not secrets; the core's sealing keys come from getrandom.
//
// Seeded on first use, never at load: Cloudflare Workers throw "Disallowed operation called within
// global scope" for randomness (and timers, I/O) outside a request handler, so a module that seeds
// at import cannot be loaded there at all. The check sits in `refill()`, which runs once per POOL
// words, so the per-span path (`word()`) gains no branch.

// Words are signed int32s: V8 keeps those as small integers (unboxed) in span fields, while uint32s
// of 2^31 and up would each cost a heap-number box per field per span.
//
// Words are handed out from a pool that the generator refills 64 at a time: `word()` stays small
// enough for the JIT to inline at every call site of the span hot path (the generator step, inlined
// six times per root span, used up the inlining budget and left the span constructor as a call).
// Generator state in a typed array: module-level `let`s holding int32 values outside the small-int
// range would allocate a heap number on every update.
const st = new Int32Array(4);
const POOL = 64;
const pool = new Int32Array(POOL);
let left = 0;
let seeded = false;

/**
 * Makes the next id draw reseed the generator, and empties the pool (in a forked child, whose state
 * would otherwise repeat the parent's ids). Does no randomness itself, so it is safe anywhere.
 */
export function reseed() {
  seeded = false;
  left = 0;
}

/**
 * Runs `fn` with the generator on a fixed state instead of a random one, then makes the next draw
 * reseed from the CSPRNG (as `reseed`). Only for warming code up where randomness is forbidden (the
 * WASM package's `init` at an edge worker's module scope, which records throwaway spans so V8
 * compiles the span path before the first request): ids drawn inside `fn` repeat across processes.
 */
export function withFixedIds(fn) {
  st.set([1, 2, 3, 4]);
  seeded = true;
  left = 0;
  try {
    return fn();
  } finally {
    reseed();
  }
}

function seed() {
  globalThis.crypto.getRandomValues(st);
  st[0] |= 1; // xoshiro's all-zero state is a fixed point
  seeded = true;
}

/** The next random 32-bit word, as an int32. */
export function word() {
  if (left === 0) refill();
  return pool[--left];
}

/** Fills the pool with the next POOL outputs of xoshiro128**. */
function refill() {
  if (!seeded) seed();
  let a = st[0];
  let b = st[1];
  let c = st[2];
  let d = st[3];
  for (let i = 0; i < POOL; i++) {
    pool[i] = Math.imul(rotl(Math.imul(b, 5), 7), 9);
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
  }
  st[0] = a;
  st[1] = b;
  st[2] = c;
  st[3] = d;
  left = POOL;
}

function rotl(x, k) {
  return (x << k) | (x >>> (32 - k));
}

/** A non-zero word, for ids whose all-zero value is invalid. */
export function nonZeroWord() {
  let w = word();
  while (w === 0) w = word();
  return w;
}

const HEX = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'));

/** Lower-case hex of 32-bit words in big-endian order (the byte order of the id). */
export function wordsToHex(...words) {
  let s = '';
  for (const w of words) s += HEX[w >>> 24] + HEX[(w >>> 16) & 255] + HEX[(w >>> 8) & 255] + HEX[w & 255];
  return s;
}

/** Parses `n` 32-bit big-endian words (int32s) from lower- or upper-case hex; null if not hex. */
export function hexToWords(hex, n) {
  if (typeof hex !== 'string' || hex.length !== n * 8 || !/^[0-9a-fA-F]+$/.test(hex)) return null;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16) | 0;
  return out;
}
