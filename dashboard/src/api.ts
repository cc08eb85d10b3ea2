// The one place the dashboard talks to the collector: every call carries the read key as a bearer
// header and every failure becomes an ApiError the page shows (never a blank panel).
import { getKey } from './auth';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** A route this collector does not have (it answers 404 without a JSON error body). */
  get notAvailable(): boolean {
    return this.code === 'not_available';
  }
}

export type Params = Record<string, string | number | undefined | null>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Turns a non-2xx answer into an ApiError with the collector's code and message. */
export async function errorOf(resp: Response): Promise<ApiError> {
  const text = await resp.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body?.error?.code) return new ApiError(resp.status, body.error.code, body.error.message ?? '');
  } catch {
    // not JSON: handled below
  }
  if (resp.status === 404) return new ApiError(404, 'not_available', 'not available on this collector');
  return new ApiError(resp.status, `http_${resp.status}`, text.slice(0, 200) || resp.statusText);
}

export function authHeaders(): HeadersInit {
  return { Authorization: `Bearer ${getKey() ?? ''}` };
}

async function request(path: string, params: Params, signal?: AbortSignal): Promise<Response> {
  let resp: Response;
  try {
    resp = await fetch(`/api/v1${path}${query(params)}`, { headers: authHeaders(), signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `cannot reach the collector: ${(e as Error).message}`);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

export async function get<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  return (await (await request(path, params, signal)).json()) as T;
}

// === the collector's answers ===

export type AnyValue =
  | { stringValue: string }
  | { intValue: string }
  | { doubleValue: number }
  | { boolValue: boolean }
  | { bytesValue: string }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } };
export interface KeyValue {
  key: string;
  value: AnyValue;
}
export interface SpanEvent {
  time_unix_nano: string;
  name: string;
  attributes: KeyValue[];
}
export interface Span {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind?: string;
  service_name: string;
  start_time_unix_nano: string;
  end_time_unix_nano?: string;
  duration_ns: number;
  status: { code: 'ok' | 'error' | 'unset'; message: string };
  attributes: KeyValue[];
  events?: SpanEvent[];
  resource?: Resource;
  scope?: { name: string; version: string };
  depth?: number;
  detached?: string;
}
export interface Resource {
  attributes: KeyValue[];
  dropped_attributes_count?: number;
}
export interface TraceSummary {
  trace_id: string;
  /** Null when the trace's root span is not stored (not sent, or not yet). */
  root_name: string | null;
  root_service: string | null;
  start_time_unix_nano: string;
  end_time_unix_nano: string;
  duration_ns: number;
  span_count: number;
  error_count: number;
}
export interface TraceList {
  traces: TraceSummary[];
  next_cursor: string | null;
}
export interface TracePage {
  trace_id: string;
  span_count: number;
  spans: Span[];
  next_cursor: string | null;
}
/**
 * A page of a trace's detail asked for with `resources=shared`: each distinct resource of the page
 * once in `resources`, and each span its `resource_index` instead of a `resource` of its own.
 */
export interface SharedTracePage {
  trace_id: string;
  span_count: number;
  resources: Resource[];
  spans: (Omit<Span, 'resource'> & { resource_index: number })[];
  next_cursor: string | null;
}
export interface Stat {
  count: number;
  errors: number;
  error_rate: number | null;
  p50_ms: number | null;
  p90_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  p999_ms: number | null;
  max_ms: number | null;
  sla_compliance: number | null;
  /** Whether sla_compliance is exact (the threshold is one of exact_sla_thresholds_ms). */
  sla_exact: boolean | null;
}
export interface StatGroup {
  service: string;
  name: string;
  group_by: string | null;
  group: string | null;
  total: Stat;
  buckets: (Stat & { start_unix_nano: string })[];
}
export interface Stats {
  from_unix_nano: string;
  to_unix_nano: string;
  step_seconds: number;
  relative_accuracy: number;
  sla_ms: number | null;
  exact_sla_thresholds_ms: number[];
  groups: StatGroup[];
}
export interface Services {
  services: { name: string; last_seen_unix_nano: string; operations: { name: string; count: number }[] }[];
}

/** `GET /api/v1/audit/gaps`: per SDK instance, sequence numbers never stored and numbers reused. */
export interface GapReport {
  instances: GapInstance[];
  instances_checked: number;
  batches_checked: number;
  /** The scan stopped at the collector's limit; instances past it were not checked. */
  truncated: boolean;
}
export interface GapInstance {
  instance_id: string;
  sdk_name: string;
  sdk_version: string;
  service: string | null;
  batches: number;
  last_sequence: number;
  first_received_unix_nano: string;
  last_received_unix_nano: string;
  missing_total: number;
  missing: {
    first_sequence: number;
    last_sequence: number;
    /** Seal time of the batch before the gap; null when the gap starts at the first number. */
    after_created_unix_nano: string | null;
    before_created_unix_nano: string;
  }[];
  reused: { sequence: number; batch_ids: string[] }[];
}
/** One entry of `GET /api/v1/audit/checkpoints`. */
export interface StoredCheckpoint {
  size: number;
  root_hash: string;
  signed_at_unix_nano: string;
  note: string;
}

/** Text of an OTLP/JSON value. */
export function valueText(v: AnyValue): string {
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return v.intValue;
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('bytesValue' in v) return `base64:${v.bytesValue}`;
  if ('arrayValue' in v) return `[${(v.arrayValue.values ?? []).map(valueText).join(', ')}]`;
  if ('kvlistValue' in v)
    return `{${(v.kvlistValue.values ?? []).map((kv) => `${kv.key}: ${valueText(kv.value)}`).join(', ')}}`;
  return JSON.stringify(v);
}

export function attr(attrs: KeyValue[] | undefined, key: string): string | undefined {
  const kv = attrs?.find((a) => a.key === key);
  return kv ? valueText(kv.value) : undefined;
}
