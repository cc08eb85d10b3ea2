// The read key lives in this browser only (localStorage) and leaves it only as a bearer header to
// /api/v1/*. run.sh prints a link with the key in the URL fragment, which browsers never send to
// the server; the fragment is swapped out of the address bar and history as soon as it is read.

const STORAGE_KEY = 'tracex.readKey';

export function getKey(): string | null {
  return localStorage.getItem(STORAGE_KEY);
}

export function setKey(key: string): void {
  localStorage.setItem(STORAGE_KEY, key.trim());
}

export function clearKey(): void {
  localStorage.removeItem(STORAGE_KEY);
}

/** Takes a `#key=…` fragment into storage; returns whether there was one. */
export function adoptFragmentKey(): boolean {
  const m = /^#key=([^&]+)/.exec(location.hash);
  if (!m) return false;
  setKey(decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
  return true;
}
