// Every failure is shown where it happened: a missing endpoint says so in its panel, anything else
// gives the collector's code and message.
import { ApiError } from '../api';

export function ErrorBox({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  if (error instanceof ApiError && error.notAvailable) {
    return (
      <p class="notice" role="status" data-testid="not-available">
        {what ?? 'This view'}: not available on this collector (its API answered 404).
      </p>
    );
  }
  const text =
    error instanceof ApiError
      ? `${error.code}${error.status ? ` (HTTP ${error.status})` : ''}: ${error.message}`
      : String((error as Error)?.message ?? error);
  return (
    <p class="error" role="alert">
      {what ? `${what}: ` : ''}
      {text}
    </p>
  );
}
