// `node --import ./harness/register.mjs …`: installs the Workers-style .wasm import (wasm-hooks.mjs).
import { register } from 'node:module';

register('./wasm-hooks.mjs', import.meta.url);
