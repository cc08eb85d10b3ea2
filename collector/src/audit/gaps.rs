//! Sequence gaps: each SDK instance numbers its sealed batches 1, 2, 3… (`tracex_core::seal`); a
//! number the collector never stored is a batch lost between the SDK and the collector (or still
//! in an SDK's spool). The same number stored under two batch ids is an instance id reused with a
//! reset sequence: both batches are kept, and the reuse is reported.
//!
//! Computed on demand from the `batches` rows (kept by retention), in `(instance, sequence)` order.

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
