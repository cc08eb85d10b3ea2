// Module hooks that make `import wasm from './x.wasm'` behave as in Cloudflare Workers and bundlers:
// the default export is a compiled `WebAssembly.Module` (not an instance, not bytes).
export async function load(url, context, nextLoad) {
  if (url.endsWith('.wasm')) {
    return {
      format: 'module',
      shortCircuit: true,
      source:
        `import { readFileSync } from 'node:fs';\n` +
        `export default new WebAssembly.Module(readFileSync(new URL(${JSON.stringify(url)})));\n`,
    };
  }
  return nextLoad(url, context);
}
