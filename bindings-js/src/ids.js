// Span and trace ids: 32-bit words from a xoshiro128** generator seeded from the platform's CSPRNG
// (WebCrypto / node:crypto), so starting a span costs no crypto call and no boundary crossing.
// Ids are unique identifiers, not secrets; the core's sealing keys come from getrandom.

// Generator state in a typed array: module-level `let`s holding int32 values outside the small-int
// range would allocate a heap number on every update.
const st = new Int32Array(4);

/** Reseeds the generator (at load, and in a forked child). */
export function reseed() {
  globalThis.crypto.getRandomValues(st);
  st[0] |= 1;
}
reseed();

/** The next random 32-bit word (xoshiro128**). */
export function word() {
  const a = st[0];
  const b = st[1];
  const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
  const c = st[2] ^ a;
  const d = st[3] ^ b;
  st[0] = a ^ d;
  st[1] = b ^ c;
  st[2] = c ^ (b << 9);
  st[3] = rotl(d, 11);
  return r >>> 0;
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

/** Parses `n` 32-bit big-endian words from lower- or upper-case hex; null if not hex. */
export function hexToWords(hex, n) {
  if (typeof hex !== 'string' || hex.length !== n * 8 || !/^[0-9a-fA-F]+$/.test(hex)) return null;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16) >>> 0;
  return out;
}
