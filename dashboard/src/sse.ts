// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the stream is
// read from a ReadableStream and split into events here (lines `event:`, `data:`, `:` comments, a
// blank line ends an event), following the WHATWG parsing rules the collector relies on.
import { authHeaders, errorOf } from './api';

export interface SseEvent {
  event: string;
  data: string;
}

/** Feeds text chunks; returns the complete events so far. */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];

  push(chunk: string): SseEvent[] {
    this.buf += chunk;
    const out: SseEvent[] = [];
    let nl = this.buf.search(/\r\n|\r|\n/);
    while (nl >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(this.buf[nl] === '\r' && this.buf[nl + 1] === '\n' ? nl + 2 : nl + 1);
      if (line === '') {
        if (this.data.length) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
      } else if (!line.startsWith(':')) {
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(line[i + 1] === ' ' ? i + 2 : i + 1);
        if (field === 'event') this.event = value;
        else if (field === 'data') this.data.push(value);
      }
      nl = this.buf.search(/\r\n|\r|\n/);
    }
    return out;
  }
}

/**
 * Streams `path`'s events to `onEvent` until the stream ends or `signal` aborts; calls `onOpen` once
 * the collector has accepted the stream (before any event: a quiet stream sends only comments).
 * Throws an ApiError on a non-2xx answer.
 */
export async function stream(
  path: string,
  signal: AbortSignal,
  onOpen: () => void,
  onEvent: (e: SseEvent) => void,
): Promise<void> {
  const resp = await fetch(`/api/v1${path}`, { headers: { ...authHeaders(), Accept: 'text/event-stream' }, signal });
  if (!resp.ok) throw await errorOf(resp);
  onOpen();
  if (!resp.body) return;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const e of parser.push(value)) onEvent(e);
  }
}
