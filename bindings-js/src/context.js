// The current span. Node (and Workers with nodejs_compat) get `AsyncLocalStorage`, so awaits and
// concurrent requests keep their own parent; elsewhere a synchronous stack is used (correct for
// synchronous nesting; across awaits pass `parent` explicitly).

/** Context held in AsyncLocalStorage. */
export class AsyncContext {
  constructor(AsyncLocalStorage) {
    this.als = new AsyncLocalStorage();
  }
  active() {
    return this.als.getStore();
  }
  with(span, fn, thisArg, args) {
    return this.als.run(span, () => fn.apply(thisArg, args));
  }
}

/** Context for runtimes without AsyncLocalStorage: a stack around synchronous calls. */
export class StackContext {
  constructor() {
    this.current = undefined;
  }
  active() {
    return this.current;
  }
  with(span, fn, thisArg, args) {
    const prev = this.current;
    this.current = span;
    try {
      return fn.apply(thisArg, args);
    } finally {
      this.current = prev;
    }
  }
}
