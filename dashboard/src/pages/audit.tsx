// Audit: what the audit log says an on-call engineer should look at. Sequence gaps per SDK instance
// (batches sealed but never stored: lost between SDK and collector, or still in an SDK's spool),
// sequence numbers stored under two batch ids (an instance id reused), and the latest signed
// checkpoint, so it is plain that the log is being signed. The gap report itself is loaded by the
// shell (it also feeds the badge on this page's nav item); this page loads the checkpoint.
import { useEffect } from 'preact/hooks';
import { type GapInstance, type GapReport, get, type StoredCheckpoint } from '../api';
import { type CheckpointNote, type Gaps, parseCheckpoint, plural, sequenceRange, summarize } from '../audit';
import { ErrorBox } from '../components/errors';
import { ago, clock, ms, serviceColor, time } from '../format';
import { type Load, useLoad } from '../load';
import { href, navigate, type Route } from '../route';

interface Checkpoint extends CheckpointNote {
  note: string;
  signedAt: string;
}

/** The latest checkpoint, or null before the log's first. Asked of the listing (`latest=true`):
 * the note with when it was signed (the note has no time), and an empty list rather than the 404
 * of `/audit/checkpoint`, which the browser would report as a failed load on a fresh collector. */
async function latestCheckpoint(signal: AbortSignal): Promise<Checkpoint | null> {
  const { checkpoints } = await get<{ checkpoints: StoredCheckpoint[] }>(
    '/audit/checkpoints',
    { latest: 'true' },
    signal,
  );
  const kept = checkpoints[0];
  return kept ? { ...parseCheckpoint(kept.note), note: kept.note, signedAt: kept.signed_at_unix_nano } : null;
}

export function Audit({
  route,
  gaps,
  tick,
  refresh,
}: {
  route: Route;
  gaps: Load<Gaps | undefined>;
  tick: number;
  refresh: () => void;
}) {
  const all = route.params.get('all') === '1';
  // Opening the page reads the report afresh (the shell's copy may be up to a refresh old).
  useEffect(refresh, []);
  const checkpoint = useLoad(latestCheckpoint, [tick]);
  const report = gaps.data;
  const sum = summarize(report);
  const problems = report?.instances.filter((i) => i.missing_total || i.reused.length) ?? [];
  return (
    <section aria-labelledby="audit-h">
      <div class="toolbar">
        <h1 id="audit-h">Audit</h1>
        <button type="button" onClick={refresh} data-testid="audit-refresh">
          Refresh
        </button>
        <label>
          <input
            type="checkbox"
            checked={all}
            onChange={(e) => navigate(href('audit', '', { all: e.currentTarget.checked ? '1' : undefined }))}
          />{' '}
          every SDK instance
        </label>
        {gaps.at && <span class="muted">checked at {clock(gaps.at * 1e6)}</span>}
      </div>

      <h2>Sequence gaps</h2>
      <p class="muted">
        Each SDK instance numbers the batches it seals 1, 2, 3… A number the collector never stored is a batch sealed
        but lost on the way (or still in the SDK's spool: the gap closes when the spool is replayed).
      </p>
      <ErrorBox error={gaps.error} what="Gap report" />
      {report?.truncated && (
        <p class="notice" role="status">
          The collector read its limit of {plural(report.batches_checked, 'batch', 'batches')}; SDK instances past it
          were not checked.
        </p>
      )}
      {report && <Summary report={report} sum={sum} />}
      {problems.some((i) => i.missing.length) && <GapTable instances={problems} />}
      {sum.reused > 0 && <ReusedTable instances={problems} />}
      {all && (report?.all ? <InstanceTable instances={report.instances} /> : <p class="muted">Loading…</p>)}

      <h2>Signed checkpoint</h2>
      <CheckpointPanel load={checkpoint} />
    </section>
  );
}

function Summary({ report, sum }: { report: GapReport; sum: ReturnType<typeof summarize> }) {
  const checked = `${plural(report.batches_checked, 'stored batch', 'stored batches')} of ${plural(report.instances_checked, 'SDK instance')} checked`;
  if (!sum.missing && !sum.reused) {
    return (
      <p class="ok-state" data-testid="no-gaps">
        <strong>No batches are missing.</strong>{' '}
        {report.batches_checked ? `${checked}: every one arrived in sequence.` : 'No sealed batches are stored yet.'}
      </p>
    );
  }
  return (
    <p class="alert-state" data-testid="gap-summary" role="status">
      <strong>
        {plural(sum.missing, 'batch', 'batches')} missing
        {sum.reused ? `, ${plural(sum.reused, 'sequence number')} reused` : ''}
      </strong>{' '}
      in {plural(sum.instances, 'SDK instance')} ({checked}).
    </p>
  );
}

function Instance({ i }: { i: GapInstance }) {
  return (
    <>
      <td>
        <code data-testid="instance">{i.instance_id}</code>
      </td>
      <td>
        {i.sdk_name} <span class="muted">{i.sdk_version}</span>
      </td>
      <td>
        {i.service ? (
          <a href={href('search', '', { service: i.service })}>
            <span class="dot" style={{ background: serviceColor(i.service) }} />
            {i.service}
          </a>
        ) : (
          <span class="muted">(none)</span>
        )}
      </td>
    </>
  );
}

/** When the batches around a gap were sealed (the SDK's clock), and how far apart. */
function Window({ after, before }: { after: string | null; before: string }) {
  if (after === null)
    return (
      <>
        before <time>{time(before)}</time> <span class="muted">(the instance's first batches)</span>
      </>
    );
  const span = Number((BigInt(before) - BigInt(after)) / 1_000_000n);
  return (
    <>
      <time>{time(after)}</time> → <time>{time(before)}</time> <span class="muted">({ms(span)})</span>
    </>
  );
}

function GapTable({ instances }: { instances: GapInstance[] }) {
  // Newest first: the gap an on-call engineer was paged for is at the top.
  const rows = instances
    .flatMap((i) => i.missing.map((m) => ({ i, m })))
    .sort((a, b) => Number(BigInt(b.m.before_created_unix_nano) - BigInt(a.m.before_created_unix_nano)));
  return (
    <div class="scroll-x">
      <table data-testid="gaps">
        <thead>
          <tr>
            <th>instance</th>
            <th>SDK</th>
            <th>service</th>
            <th>missing</th>
            <th class="num">count</th>
            <th>sealed between</th>
            <th>last stored</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ i, m }) => (
            <tr key={`${i.instance_id}/${m.first_sequence}`} class="has-error" data-testid="gap">
              <Instance i={i} />
              <td data-testid="gap-range">{sequenceRange(m.first_sequence, m.last_sequence)}</td>
              <td class="num bad" data-testid="gap-count">
                {m.last_sequence - m.first_sequence + 1}
              </td>
              <td data-testid="gap-window">
                <Window after={m.after_created_unix_nano} before={m.before_created_unix_nano} />
              </td>
              <td title={time(i.last_received_unix_nano)}>
                #{i.last_sequence}, {ago(i.last_received_unix_nano)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ReusedTable({ instances }: { instances: GapInstance[] }) {
  return (
    <>
      <h3>
        <span class="badge bad">reused</span> Sequence numbers stored under more than one batch
      </h3>
      <p class="muted">
        An SDK instance id came back with its numbering reset (a cloned process or VM snapshot, or a forged instance).
        Every batch was kept; the numbers are not a reliable sequence for this instance.
      </p>
      <div class="scroll-x">
        <table data-testid="reused">
          <thead>
            <tr>
              <th>instance</th>
              <th>SDK</th>
              <th>service</th>
              <th>sequence</th>
              <th>batch ids</th>
            </tr>
          </thead>
          <tbody>
            {instances.flatMap((i) =>
              i.reused.map((r) => (
                <tr key={`${i.instance_id}/${r.sequence}`} class="has-error">
                  <Instance i={i} />
                  <td>#{r.sequence}</td>
                  <td>
                    {r.batch_ids.map((b) => (
                      <code class="block">{b}</code>
                    ))}
                  </td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      </div>
    </>
  );
}

function InstanceTable({ instances }: { instances: GapInstance[] }) {
  return (
    <>
      <h3>Every SDK instance</h3>
      {!instances.length && <p class="muted">No SDK instance has stored a sealed batch.</p>}
      <div class="scroll-x">
        <table data-testid="instances">
          <thead>
            <tr>
              <th>instance</th>
              <th>SDK</th>
              <th>service</th>
              <th class="num">batches</th>
              <th class="num">last #</th>
              <th>first stored</th>
              <th>last stored</th>
              <th>state</th>
            </tr>
          </thead>
          <tbody>
            {instances.map((i) => (
              <tr key={i.instance_id} class={i.missing_total || i.reused.length ? 'has-error' : ''}>
                <Instance i={i} />
                <td class="num">{i.batches}</td>
                <td class="num">{i.last_sequence}</td>
                <td>{time(i.first_received_unix_nano)}</td>
                <td>{time(i.last_received_unix_nano)}</td>
                <td class={i.missing_total || i.reused.length ? 'bad' : ''}>
                  {[i.missing_total && `${i.missing_total} missing`, i.reused.length && `${i.reused.length} reused`]
                    .filter(Boolean)
                    .join(', ') || 'complete'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function CheckpointPanel({ load }: { load: Load<Checkpoint | null> }) {
  if (load.error) return <ErrorBox error={load.error} what="Checkpoint" />;
  const c = load.data;
  if (c === undefined) return <p class="muted">Loading…</p>;
  if (c === null) {
    return (
      <p class="notice" role="status" data-testid="no-checkpoint">
        No checkpoint yet: the collector signs one within seconds of storing its first batch.
      </p>
    );
  }
  return (
    <div class="card" data-testid="checkpoint">
      <dl class="meta">
        <dt>log</dt>
        <dd>
          <code>{c.origin}</code>
        </dd>
        <dt>tree size</dt>
        <dd data-testid="checkpoint-size">{c.size.toLocaleString('en')} leaves</dd>
        <dt>root hash</dt>
        <dd>
          <code data-testid="checkpoint-root">{c.root}</code>
        </dd>
        <dt>signed</dt>
        <dd data-testid="checkpoint-time">
          <time>{time(c.signedAt)}</time> <span class="muted">({ago(c.signedAt)})</span>
        </dd>
        <dt>signed by</dt>
        <dd>{c.signers.join(', ')}</dd>
      </dl>
      <p class="muted">
        Batches stored after it are in the next checkpoint, signed within seconds while batches arrive.
      </p>
      <details>
        <summary>Signed note</summary>
        <pre data-testid="checkpoint-note">{c.note}</pre>
      </details>
      <p class="muted">
        The signature is not checked in this page. A witness checks it and that each checkpoint extends the last one it
        kept: <code>tracex-witness</code> (docs/audit.md).
      </p>
    </div>
  );
}
