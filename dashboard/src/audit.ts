// The audit view's pure parts: reading a signed checkpoint note (C2SP tlog-checkpoint) and
// summing up a gap report, for the page and for the badge on its nav item.
import type { GapReport } from './api';

export interface CheckpointNote {
  /** The log's name (also the audit key's name). */
  origin: string;
  size: number;
  /** Root hash, base64 as in the note. */
  root: string;
  /** Names of the keys whose signature lines the note carries (not verified here). */
  signers: string[];
}

/** Reads a checkpoint note: origin, size, root hash, extension lines, a blank line, then
 * signature lines `— <name> <base64>`. Throws on anything else. */
export function parseCheckpoint(note: string): CheckpointNote {
  const split = note.indexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint is not a signed note (no blank line before the signatures)');
  const [origin = '', size = '', root = ''] = note.slice(0, split).split('\n');
  if (!origin || !/^\d+$/.test(size) || !/^[A-Za-z0-9+/]{43}=$/.test(root))
    throw new Error('the checkpoint does not start with origin, tree size and root hash');
  const signers = note
    .slice(split + 2)
    .split('\n')
    .filter((l) => l.startsWith('\u2014 '))
    .map((l) => l.split(' ')[1]);
  if (!signers.length) throw new Error('the checkpoint carries no signature');
  return { origin, size: Number(size), root, signers };
}

/** A gap report, and whether it lists every instance (`all=true`) or only those with gaps. */
export type Gaps = GapReport & { all: boolean };

export interface GapSummary {
  /** Batches never stored, all instances together. */
  missing: number;
  /** Sequence numbers stored under more than one batch id. */
  reused: number;
  /** Instances with either. */
  instances: number;
}

export function summarize(report: GapReport | undefined): GapSummary {
  const s: GapSummary = { missing: 0, reused: 0, instances: 0 };
  for (const i of report?.instances ?? []) {
    s.missing += i.missing_total;
    s.reused += i.reused.length;
    if (i.missing_total || i.reused.length) s.instances += 1;
  }
  return s;
}

/** `#5` or `#5–#7`. */
export function sequenceRange(first: number, last: number): string {
  return first === last ? `#${first}` : `#${first}–#${last}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
}
