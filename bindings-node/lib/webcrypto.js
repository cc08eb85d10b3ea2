// Node 18 exposes WebCrypto as `require('node:crypto').webcrypto` but not as `globalThis.crypto`
// (unflagged from Node 19); the shared JS layer seeds span ids from `globalThis.crypto`.
import { webcrypto } from 'node:crypto';

if (typeof globalThis.crypto !== 'object' || typeof globalThis.crypto.getRandomValues !== 'function') {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true, writable: true });
}
