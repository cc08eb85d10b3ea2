// The dashboard's shell: sign-in gate, navigation and the hash router. Every page is a function of
// the URL fragment; errors anywhere land in a banner instead of a blank page.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { adoptFragmentKey, clearKey, getKey } from './auth';
import { Live } from './pages/live';
import { Overview } from './pages/overview';
import { Search } from './pages/search';
import { SignIn } from './pages/signin';
import { Trace } from './pages/trace';
import { navigate, useRoute } from './route';

adoptFragmentKey();

const PAGES = [
  { page: 'overview', label: 'Overview', key: 'o' },
  { page: 'search', label: 'Search', key: 's' },
  { page: 'live', label: 'Live', key: 'l' },
];

function useUncaught(): string | null {
  const [msg, setMsg] = useState<string | null>(null);
  useEffect(() => {
    const onError = (e: ErrorEvent) => setMsg(e.message);
    const onRejection = (e: PromiseRejectionEvent) => setMsg(String(e.reason?.message ?? e.reason));
    window.addEventListener('error', onError);
    window.addEventListener('unhandledrejection', onRejection);
    return () => {
      window.removeEventListener('error', onError);
      window.removeEventListener('unhandledrejection', onRejection);
    };
  }, []);
  return msg;
}

function App() {
  const route = useRoute();
  const uncaught = useUncaught();
  const signedIn = Boolean(getKey());
  // g then o/s/l jumps between pages, as in many consoles; never while typing in a field.
  useEffect(() => {
    let g = false;
    const on = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName)) return;
      if (e.key === 'g') {
        g = true;
        return;
      }
      const p = g && PAGES.find((x) => x.key === e.key);
      g = false;
      if (p) navigate(`#/${p.page}`);
    };
    window.addEventListener('keydown', on);
    return () => window.removeEventListener('keydown', on);
  }, []);

  if (!signedIn || route.page === 'signin') {
    return (
      <main>
        <SignIn next={route.page === 'signin' ? '#/overview' : location.hash} />
      </main>
    );
  }
  const signOut = () => {
    clearKey();
    navigate('#/signin');
  };
  const body =
    route.page === 'search' ? (
      <Search route={route} />
    ) : route.page === 'trace' ? (
      <Trace route={route} />
    ) : route.page === 'live' ? (
      <Live route={route} />
    ) : (
      <Overview route={route} />
    );
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <strong class="brand">tracex</strong>
        <nav aria-label="pages">
          {PAGES.map((p) => (
            <a href={`#/${p.page}`} aria-current={route.page === p.page ? 'page' : undefined} title={`g ${p.key}`}>
              {p.label}
            </a>
          ))}
        </nav>
        <button type="button" onClick={signOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      {uncaught && (
        <p class="error" role="alert">
          Unexpected error: {uncaught}
        </p>
      )}
      <main id="main" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
