//! The live tail across a fleet: collectors sharing one PostgreSQL database each fan out what
//! their own writer commits, and follow the shared audit log for the rest. Every
//! [`POLL_INTERVAL`], while someone watches, the leaves appended since the last look are read;
//! those this collector committed itself (already shown at their commit) are passed over, and the
//! others' spans are read back from the store and handed to the fan-out like a local commit. With
//! nobody watching, the poller only moves to the log's end. A batch committed by another
//! collector reaches this collector's viewers within about one interval.

use std::sync::Arc;
use std::time::Duration;

use super::LiveHub;
use crate::audit::spans;
use crate::store::{NewBatch, Store, StoreResult};

/// How often the shared log is looked at: a quarter of a second is what a person watching a tail
/// notices least, and one indexed read of `audit_leaves` costs the database next to nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Most leaves read in one look (a burst larger than that is shown over the next looks).
const MAX_LEAVES: usize = 256;

/// Runs until aborted, from leaf `start` on: the log's size before the collector accepted its first
/// request, so nothing another collector stores from then on is missed.
pub async fn run(store: Arc<dyn Store>, live: LiveHub, every: Duration, start: u64) {
    let mut next: Option<u64> = Some(start);
    loop {
        tokio::time::sleep(every).await;
        let (store, hub, from) = (store.clone(), live.clone(), next);
        match tokio::task::spawn_blocking(move || look(&*store, &hub, from)).await {
            Ok(Ok(n)) => next = Some(n),
            Ok(Err(e)) => tracing::warn!(error = %e, "the fleet live tail could not read the audit log; retrying"),
            Err(e) => tracing::error!(error = %e, "the fleet live tail panicked"),
        }
    }
}

/// One look from leaf `from` (`None`: after a failed look, from the log's end); returns where the
/// next one starts.
fn look(store: &dyn Store, live: &LiveHub, from: Option<u64>) -> StoreResult<u64> {
    let Some(from) = from.filter(|_| live.viewers() > 0) else {
        let end = store.audit_size()?;
        live.forget_own_below(end);
        return Ok(end);
    };
    let mut next = from;
    let mut batches = Vec::new();
    let mut resources = spans::ResourceCache::new();
    for record in store.audit_leaves(from, MAX_LEAVES)? {
        if record.index != next {
            break;
        }
        next += 1;
        if live.take_own(record.index) {
            continue;
        }
        let read = spans::read(store, &record, &mut resources)?;
        if read.groups.is_empty() {
            continue;
        }
        let leaf = &read.leaf;
        batches.push(NewBatch {
            project: leaf.project.clone(),
            batch_id: leaf.batch_id,
            // Not in the leaf, and not shown by the tail.
            key_id: [0; 32],
            instance_id: leaf.instance_id,
            sequence: leaf.sequence,
            sdk_name: String::new(),
            sdk_version: String::new(),
            created_at_unix_nano: leaf.created_at_unix_nano,
            received_at_unix_nano: leaf.received_at_unix_nano,
            envelope_sha256: leaf.envelope_sha256,
            origin: leaf.origin,
            prepared: None,
            request: read.request(),
        });
    }
    live.forget_own_below(next);
    if !batches.is_empty() {
        let stored = vec![true; batches.len()];
        live.publish(&Arc::new(batches), stored);
    }
    Ok(next)
}
