// Sign-in: the read key is checked against the collector before it is kept.
import { useState } from 'preact/hooks';
import { get, type TraceList } from '../api';
import { clearKey, setKey } from '../auth';
import { ErrorBox } from '../components/errors';
import { navigate } from '../route';

export function SignIn({ next }: { next: string }) {
  const [key, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setKey(key);
    try {
      await get<TraceList>('/traces', { limit: 1 });
      navigate(next || '#/overview');
    } catch (err) {
      clearKey();
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="signin" aria-labelledby="signin-h">
      <h1 id="signin-h">Sign in to tracex</h1>
      <p>
        Paste a <strong>read</strong> key of your project (<code>tracex-collector apikey create --scope read</code>). It
        stays in this browser and is sent only to this collector, as a bearer header.
      </p>
      <form onSubmit={submit}>
        <label>
          Read key
          <input
            type="password"
            autocomplete="off"
            required
            value={key}
            onInput={(e) => setValue(e.currentTarget.value)}
            name="key"
            autofocus
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
      <ErrorBox error={error} what="Sign-in" />
    </section>
  );
}
