// tracex-wasm, Node entry: instantiates the .wasm beside this file synchronously at import, so
// `import { Tracer } from 'tracex-wasm'` needs no init call (`init()` is still exported, a no-op here,
// so the same code runs everywhere), and keeps the current span across awaits with AsyncLocalStorage.
import { readFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { initSync } from './tracex_wasm.js';
import { markReady, useAsyncLocalStorage } from './platform.js';

initSync({ module: readFileSync(new URL('./tracex_wasm_bg.wasm', import.meta.url)) });
markReady();
useAsyncLocalStorage(AsyncLocalStorage);

export * from './index.js';
export { default } from './index.js';
