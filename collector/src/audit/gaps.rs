//! Sequence gaps: each SDK instance numbers its sealed batches 1, 2, 3… (`tracex_core::seal`); a
//! number the collector never stored is a batch lost between the SDK and the collector (or still
//! in an SDK's spool). The same number stored under two batch ids is an instance id reused with a
//! reset sequence: both batches are kept, and the reuse is reported.
//!
//! Computed on demand from the `batches` rows (kept by retention), in `(instance, sequence)` order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The first sequence number an SDK instance gives (`Sealer::new`).
pub const FIRST_SEQUENCE: u64 = 1;

/// One stored batch's place in its instance's sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchSeq {
    /// SDK instance.
    pub instance_id: [u8; 8],
    /// Its sequence number.
    pub sequence: u64,
    /// The batch.
    pub batch_id: [u8; 16],
    /// SDK that sealed it.
    pub sdk_name: String,
    /// SDK version.
    pub sdk_version: String,
    /// `service.name` of its first resource.
    pub service: Option<String>,
    /// When the SDK sealed it (unix ns).
    pub created_at_unix_nano: u64,
    /// When the collector stored it (unix ns).
    pub received_at_unix_nano: u64,
}

/// Sequence numbers `first..=last` never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// First missing number.
    pub first: u64,
    /// Last missing number.
    pub last: u64,
    /// When the batch before the gap was sealed (`None`: the gap starts at the first number).
    pub after_created_at_unix_nano: Option<u64>,
    /// When the batch after the gap was sealed.
    pub before_created_at_unix_nano: u64,
}

/// A sequence number stored under several batch ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reused {
    /// The number.
    pub sequence: u64,
    /// The batches that carry it.
    pub batch_ids: Vec<[u8; 16]>,
}

/// What one instance's batches say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The instance.
    pub instance_id: [u8; 8],
    /// Its SDK (of its latest batch).
    pub sdk_name: String,
    /// Its SDK version.
    pub sdk_version: String,
    /// Its service.
    pub service: Option<String>,
    /// Batches stored.
    pub batches: u64,
    /// Highest sequence number stored.
    pub last_sequence: u64,
    /// First and last receipt times.
    pub first_received_unix_nano: u64,
    /// Last receipt time.
    pub last_received_unix_nano: u64,
    /// Gaps, ascending.
    pub missing: Vec<Missing>,
    /// Numbers reused.
    pub reused: Vec<Reused>,
}

impl Instance {
    /// Batches missing in all.
    pub fn missing_total(&self) -> u64 {
        self.missing.iter().map(|m| m.last - m.first + 1).sum()
    }
}

/// The report of each instance in `rows` (sorted by instance then sequence; OTLP batches, which
/// have no instance, are skipped).
pub fn report(rows: &[BatchSeq]) -> Vec<Instance> {
    let mut out = Vec::new();
    for group in rows.chunk_by(|a, b| a.instance_id == b.instance_id) {
        if group[0].instance_id == [0; 8] {
            continue;
        }
        let latest = group.iter().max_by_key(|b| b.received_at_unix_nano).unwrap_or(&group[0]);
        let mut inst = Instance {
            instance_id: group[0].instance_id,
            sdk_name: latest.sdk_name.clone(),
            sdk_version: latest.sdk_version.clone(),
            service: group.iter().find_map(|b| b.service.clone()),
            batches: group.len() as u64,
            last_sequence: group[group.len() - 1].sequence,
            first_received_unix_nano: group.iter().map(|b| b.received_at_unix_nano).min().unwrap_or(0),
            last_received_unix_nano: group.iter().map(|b| b.received_at_unix_nano).max().unwrap_or(0),
            missing: Vec::new(),
            reused: Vec::new(),
        };
        let mut expected = FIRST_SEQUENCE;
        let mut previous: Option<&BatchSeq> = None;
        for same in group.chunk_by(|a, b| a.sequence == b.sequence) {
            let b = &same[0];
            if b.sequence > expected {
                inst.missing.push(Missing {
                    first: expected,
                    last: b.sequence - 1,
                    after_created_at_unix_nano: previous.map(|p| p.created_at_unix_nano),
                    before_created_at_unix_nano: b.created_at_unix_nano,
                });
            }
            if same.len() > 1 {
                inst.reused.push(Reused { sequence: b.sequence, batch_ids: same.iter().map(|s| s.batch_id).collect() });
            }
            expected = b.sequence.saturating_add(1);
            previous = Some(b);
        }
        out.push(inst);
    }
    out
}

/// Instances [`Tracker`] follows; past it, it starts over (the API stays exact).
pub const TRACKED_INSTANCES: usize = 10_000;
/// Missing numbers [`Tracker`] remembers per instance; a larger jump counts but is not remembered.
pub const TRACKED_MISSING: usize = 1024;

/// Where an instance's losses are counted in `tracex_batches_missing`: its project, SDK and
/// service, not the instance itself — a restarted SDK is a new instance, so per-instance series
/// would grow without bound.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GapGroup {
    /// Project of the ingest key.
    pub project: String,
    /// SDK that sealed the batches.
    pub sdk_name: String,
    /// `service.name` of the batches' first resource ("" when none).
    pub service: String,
}

/// The writer's running view of gaps, for the `tracex_batches_missing` gauge: per instance seen
/// since start, the highest number stored and the numbers skipped since, counted per
/// [`GapGroup`]. It starts from each instance's first batch after a restart (no history), so it
/// alerts on losses as they happen; `GET /api/v1/audit/gaps` is the exact account.
#[derive(Debug, Default)]
pub struct Tracker {
    instances: HashMap<(String, [u8; 8]), Seen>,
    /// Numbers skipped and not (yet) filled, per group; a group stays (at 0) once it had a gap, so
    /// an alert on it resolves rather than vanishes.
    missing: BTreeMap<GapGroup, u64>,
    changed: bool,
}

#[derive(Debug)]
struct Seen {
    max: u64,
    holes: BTreeSet<u64>,
    group: GapGroup,
}

impl Tracker {
    /// A stored batch of `project`'s `instance` with `sequence`, sealed by `sdk_name` for
    /// `service`.
    pub fn stored(&mut self, project: &str, instance: [u8; 8], sequence: u64, sdk_name: &str, service: Option<&str>) {
        if instance == [0; 8] {
            return;
        }
        let key = (project.to_owned(), instance);
        if self.instances.len() >= TRACKED_INSTANCES && !self.instances.contains_key(&key) {
            self.instances.clear();
            self.missing.clear();
            self.changed = true;
        }
        let seen = self.instances.entry(key).or_insert_with(|| Seen {
            max: sequence,
            holes: BTreeSet::new(),
            group: GapGroup {
                project: project.to_owned(),
                sdk_name: sdk_name.to_owned(),
                service: service.unwrap_or_default().to_owned(),
            },
        });
        if sequence > seen.max + 1 {
            let skipped = sequence - seen.max - 1;
            *self.missing.entry(seen.group.clone()).or_default() += skipped;
            seen.holes.extend((seen.max + 1..sequence).take(TRACKED_MISSING.saturating_sub(seen.holes.len())));
            seen.max = sequence;
            self.changed = true;
        } else if sequence > seen.max {
            seen.max = sequence;
        } else if seen.holes.remove(&sequence) {
            // A late batch (a retry, a spool replay) fills its gap.
            if let Some(n) = self.missing.get_mut(&seen.group) {
                *n = n.saturating_sub(1);
            }
            self.changed = true;
        }
    }

    /// Numbers skipped and not filled since start, all groups together.
    pub fn missing(&self) -> u64 {
        self.missing.values().sum()
    }

    /// The count per group, if it changed since the last call: gaps are rare, so the writer
    /// copies this out only when one opens or closes.
    pub fn take_changed(&mut self) -> Option<Vec<(GapGroup, u64)>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(self.missing.iter().map(|(g, n)| (g.clone(), *n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(instance: u8, sequence: u64, id: u8) -> BatchSeq {
        BatchSeq {
            instance_id: [instance; 8],
            sequence,
            batch_id: [id; 16],
            sdk_name: "tracex-node".into(),
            sdk_version: "0.1.0".into(),
            service: Some("facilitator".into()),
            created_at_unix_nano: sequence * 10,
            received_at_unix_nano: sequence * 10 + 1,
        }
    }

    #[test]
    fn the_tracker_counts_skips_and_late_arrivals_fill_them() {
        let mut t = Tracker::default();
        let group = |project: &str, service: &str| GapGroup {
            project: project.into(),
            sdk_name: "tracex-node".into(),
            service: service.into(),
        };
        for s in [5, 6, 9, 10] {
            t.stored("p", [1; 8], s, "tracex-node", Some("api"));
        }
        assert_eq!(t.missing(), 2, "7 and 8; nothing before the first batch seen");
        assert_eq!(t.take_changed(), Some(vec![(group("p", "api"), 2)]));
        assert_eq!(t.take_changed(), None, "nothing new");
        t.stored("p", [1; 8], 8, "tracex-node", Some("api"));
        t.stored("p", [1; 8], 8, "tracex-node", Some("api"));
        assert_eq!(t.missing(), 1);
        // Another project's instance with the same id, and no service.
        t.stored("q", [1; 8], 3, "tracex-node", None);
        t.stored("q", [1; 8], 5, "tracex-node", None);
        t.stored("p", [0; 8], 0, "tracex-node", None);
        assert_eq!(t.missing(), 2);
        // Another instance of the same group adds to it; its gap filled, the group stays at 0.
        t.stored("p", [2; 8], 1, "tracex-node", Some("api"));
        t.stored("p", [2; 8], 3, "tracex-node", Some("api"));
        assert_eq!(t.take_changed(), Some(vec![(group("p", "api"), 2), (group("q", ""), 1)]));
        for (instance, s) in [(1, 7), (2, 2)] {
            t.stored("p", [instance; 8], s, "tracex-node", Some("api"));
        }
        assert_eq!(t.take_changed(), Some(vec![(group("p", "api"), 0), (group("q", ""), 1)]));
        assert_eq!(t.missing(), 1);
    }

    #[test]
    fn gaps_reuse_and_leading_losses_are_reported_exactly() {
        let rows = vec![
            b(0, 0, 90), // OTLP: no instance
            b(1, 1, 1),
            b(1, 2, 2),
            b(1, 5, 3),
            b(1, 6, 4),
            b(1, 9, 5),
            b(2, 3, 6),
            b(2, 3, 7),
            b(2, 4, 8),
            b(3, 1, 9),
        ];
        let r = report(&rows);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0].missing,
            [
                Missing { first: 3, last: 4, after_created_at_unix_nano: Some(20), before_created_at_unix_nano: 50 },
                Missing { first: 7, last: 8, after_created_at_unix_nano: Some(60), before_created_at_unix_nano: 90 },
            ]
        );
        assert_eq!((r[0].missing_total(), r[0].batches, r[0].last_sequence), (4, 5, 9));
        assert!(r[0].reused.is_empty());
        assert_eq!(
            r[1].missing,
            [Missing { first: 1, last: 2, after_created_at_unix_nano: None, before_created_at_unix_nano: 30 }]
        );
        assert_eq!(r[1].reused, [Reused { sequence: 3, batch_ids: vec![[6; 16], [7; 16]] }]);
        assert!(r[2].missing.is_empty() && r[2].reused.is_empty());
    }
}
