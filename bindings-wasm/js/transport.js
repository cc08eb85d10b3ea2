// The WASM core's pump (src/transport.rs, src/tracer.rs) calls out to JS here. Building the request and
// reading the answer from Rust took a boundary crossing per header, property and getter — and
// `response.headers` builds a new Headers object on each access (workerd copies every header into
// it): in workerd's inspector profile of a request that seals and sends its spans, that glue was
// about a fifth of the flush. So each tracer binds its request once (`newSender`), an attempt is one
// call with the body, and the flush report is built here from plain numbers (setting its fields
// one by one from Rust decoded each name from WASM memory on every flush). What to do with an
// answer is still decided by the core.

/**
 * Binds one tracer's batch POST: the returned `send(body, timeoutMs)` POSTs `body` to `url` and
 * resolves with `[status, receipt, retryAfter, text]` (the values of the `receiptHeader` and
 * `retry-after` headers or null, and the body text of a non-2xx answer), or rejects as `fetch` does
 * (network error, timeout). `timeoutMs` bounds the attempt where `AbortSignal.timeout` exists;
 * elsewhere the attempt runs without a timeout of its own.
 */
export function newSender(url, authorization, contentType, receiptHeader) {
  // Made at the tracer's first send, never at load; the same headers object for every attempt.
  const headers = { authorization, 'content-type': contentType };
  return function send(body, timeoutMs) {
    // `redirect: 'manual'`: as in the native SDKs, a batch and its bearer key go only to the
    // configured endpoint; a 3xx is a rejection, not followed.
    const init = { method: 'POST', headers, body, redirect: 'manual' };
    if (typeof AbortSignal === 'function' && typeof AbortSignal.timeout === 'function') {
      init.signal = AbortSignal.timeout(timeoutMs);
    }
    return fetch(url, init).then(answer);
  };

  function answer(response) {
    // Browsers hide a redirect they did not follow behind status 0.
    if (response.type === 'opaqueredirect') return [0, null, null, 'a redirect, not followed'];
    const status = response.status;
    const { headers } = response;
    const head = [status, headers.get(receiptHeader), headers.get('retry-after'), ''];
    if (status >= 200 && status < 300) return head;
    return response.text().then(
      (text) => {
        head[3] = text;
        return head;
      },
      () => head,
    );
  }
}

/** The flush report (`FlushReport` in index.d.ts); `lastError` only when an attempt failed. */
export function flushReport(spansDelivered, spooled, failed, pending, dropped, lastError) {
  const report = { spansDelivered, spooled, failed, pending, dropped };
  if (lastError !== undefined) report.lastError = lastError;
  return report;
}

// The pinned audit key imported into WebCrypto, by its bytes: a tracer pins one key for its life.
const auditKeys = new Map();

/**
 * Whether each 64-byte Ed25519 signature in `signatures` (concatenated) verifies over `message` by
 * `publicKey`, with the host's WebCrypto: ≈ 50–75 µs a receipt in workerd (BoringSSL) against
 * ≈ 200 µs for the core's ed25519-dalek compiled to WASM. Resolves `undefined` where the host
 * cannot tell (no `crypto.subtle`, no Ed25519 in it, a call that fails): the core then verifies.
 * The core has checked everything else about the receipt and counts the outcome.
 */
export async function verifyEd25519(publicKey, message, signatures) {
  // The arguments are views of the WASM module's memory: copied before the first await, since a
  // flush running meanwhile may grow that memory, which leaves every old view empty (and an empty
  // list of signatures would pass the loop below).
  publicKey = publicKey.slice();
  message = message.slice();
  signatures = signatures.slice();
  if (signatures.length === 0 || signatures.length % 64 !== 0) return undefined;
  try {
    const subtle = globalThis.crypto.subtle;
    const id = publicKey.join();
    let key = auditKeys.get(id);
    if (key === undefined) {
      key = subtle.importKey('raw', publicKey, 'Ed25519', false, ['verify']);
      auditKeys.set(id, key);
    }
    for (let at = 0; at < signatures.length; at += 64) {
      if (!(await subtle.verify('Ed25519', await key, signatures.subarray(at, at + 64), message))) return false;
    }
    return true;
  } catch {
    return undefined;
  }
}
