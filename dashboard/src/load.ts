// Loading a page's data: the latest answer or error of an async call, redone when its inputs
// change; a call overtaken by a newer one is aborted and never lands.
import { useEffect, useState } from 'preact/hooks';

export interface Load<T> {
  data?: T;
  error?: unknown;
  /** When `data` arrived (ms since the epoch). */
  at?: number;
}

export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Load<T> {
  const [state, setState] = useState<Load<T>>({});
  useEffect(() => {
    const ac = new AbortController();
    fn(ac.signal).then(
      (data) => setState({ data, at: Date.now() }),
      (error) => ac.signal.aborted || setState({ error }),
    );
    return () => ac.abort();
  }, deps);
  return state;
}
