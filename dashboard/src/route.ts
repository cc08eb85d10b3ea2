// Hash routing: `#/page/arg?query` — the URL holds the whole view (shareable, and the back button
// walks through it). Nothing in the fragment reaches the server.
import { useEffect, useState } from 'preact/hooks';
import { adoptFragmentKey } from './auth';

export interface Route {
  page: string;
  arg: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [path, qs = ''] = h.split('?', 2);
  const [page = '', ...rest] = path.split('/');
  return { page: page || 'overview', arg: decodeURIComponent(rest.join('/')), params: new URLSearchParams(qs) };
}

export function href(page: string, arg = '', params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return `#/${page}${arg ? `/${encodeURIComponent(arg)}` : ''}${s ? `?${s}` : ''}`;
}

/** Goes to a view; `replace` keeps it out of history (for state that is not a navigation). */
export function navigate(to: string, replace = false): void {
  if (replace) {
    history.replaceState(null, '', to);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = to;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => {
      // A `#key=` link opened in a tab that already shows the dashboard: no page load, only this.
      adoptFragmentKey();
      setRoute(parseHash(location.hash));
    };
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
