// The dashboard's shell: sign-in gate, navigation and the hash router. Every page is a function of
// the URL fragment; errors anywhere land in a banner instead of a blank page.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { type GapReport, get } from './api';
import { type Gaps, plural, summarize } from './audit';
import { adoptFragmentKey, clearKey, getKey } from './auth';
import { useLoad } from './load';
import { Audit } from './pages/audit';
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
  { page: 'audit', label: 'Audit', key: 'a' },
];

/** How often the shell re-reads the gap report behind the Audit badge. */
const GAPS_REFRESH_MS = 30_000;

/** The gap report, re-read every GAPS_REFRESH_MS while signed in (and on `refresh`): one load for
 * the badge on the Audit nav item and the Audit page, so the two never disagree. */
function useGaps(enabled: boolean, all: boolean) {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!enabled) return;
    const t = setInterval(() => setTick((n) => n + 1), GAPS_REFRESH_MS);
    return () => clearInterval(t);
  }, [enabled]);
  const gaps = useLoad<Gaps | undefined>(
    async (signal) =>
      enabled
        ? { ...(await get<GapReport>('/audit/gaps', { all: all ? 'true' : undefined }, signal)), all }
        : undefined,
    [enabled, all, tick],
  );
  return { gaps, tick, refresh: () => setTick((n) => n + 1) };
}

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
  const { gaps, tick, refresh } = useGaps(
    signedIn && route.page !== 'signin',
    route.page === 'audit' && route.params.get('all') === '1',
  );
  const flagged = summarize(gaps.data);
  const flags = flagged.missing + flagged.reused;
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
    ) : route.page === 'audit' ? (
      <Audit route={route} gaps={gaps} tick={tick} refresh={refresh} />
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
              {p.page === 'audit' && flags > 0 && ' '}
              {p.page === 'audit' && flags > 0 && (
                <span
                  class="count"
                  data-testid="audit-badge"
                  title={`${plural(flagged.missing, 'batch', 'batches')} missing, ${plural(flagged.reused, 'sequence number')} reused`}
                >
                  {flags}
                </span>
              )}
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
