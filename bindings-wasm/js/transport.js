// One delivery attempt for the WASM core's pump (src/transport.rs): the batch POST and the parts of
// the answer the core needs, in one call from WebAssembly. Building the request and reading the
// answer from Rust took a boundary crossing per header, property and getter — and `response.headers`
// builds a new Headers object on each access (workerd copies every header into it): in workerd's
// inspector profile of a request that seals and sends its spans, that glue was about a fifth of
// the flush. What to do with the answer is still decided by the core.

/**
 * POSTs `body` to `url`; resolves with `[status, receipt, retryAfter, text]` (the values of the
 * `receiptHeader` and `retry-after` headers or null, and the body text of a non-2xx answer), rejects as
 * `fetch` does (network error, timeout). `timeoutMs` bounds the attempt where `AbortSignal.timeout`
 * exists; elsewhere the attempt runs without a timeout of its own.
 */
export function sendBatch(url, authorization, contentType, receiptHeader, body, timeoutMs) {
  // `redirect: 'manual'`: as in the native SDKs, a batch and its bearer key go only to the
  // configured endpoint; a 3xx is a rejection, not followed.
  const init = { method: 'POST', headers: { authorization, 'content-type': contentType }, body, redirect: 'manual' };
  if (typeof AbortSignal === 'function' && typeof AbortSignal.timeout === 'function') {
    init.signal = AbortSignal.timeout(timeoutMs);
  }
  return fetch(url, init).then(async (response) => {
    const { headers } = response;
    // Browsers hide a redirect they did not follow behind status 0.
    if (response.type === 'opaqueredirect') return [0, null, null, 'a redirect, not followed'];
    const status = response.status;
    const text = status >= 200 && status < 300 ? '' : await response.text().catch(() => '');
    return [status, headers.get(receiptHeader), headers.get('retry-after'), text];
  });
}
