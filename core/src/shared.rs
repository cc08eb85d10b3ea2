//! The state one tracer's handles, its worker threads and a host's pump share: buffer, counters,
//! pipeline, collector key and delivery state. Its own module so that `tracer` (which owns the
//! handles) and `worker` (which runs the threads) both depend on it and not on each other; the
//! worker never holds a `Tracer`, so dropping the last handle shuts it down.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::audit::{PendingReceipt, VerifierKey};
use crate::batch::Pipeline;
use crate::buffer::SpanBuffer;
use crate::clock::Clock;
use crate::config::BatchConfig;
use crate::delivery::{Delivery, Progress, Step};
use crate::error::{Error, Result};
use crate::seal::{CollectorKey, DataKey, KeyId, SealedBatch};
use crate::stats::{Stats, StatsSnapshot};
use crate::transport::SendOutcome;

pub(crate) struct Core {
    pub(crate) buffer: SpanBuffer,
    pub(crate) stats: Stats,
    pub(crate) clock: Arc<dyn Clock>,
    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    pub(crate) batch: BatchConfig,
    pipeline: Mutex<Pipeline>,
    /// The collector key: set at build time, or once fetched and checked against `key_id`.
    key: Arc<OnceLock<CollectorKey>>,
    key_id: KeyId,
    delivery: Mutex<Delivery>,
    /// The pinned audit key: every acknowledgement's receipt is checked against it.
    audit_key: Option<VerifierKey>,
}

impl Core {
    pub(crate) fn new(
        buffer: SpanBuffer,
        clock: Arc<dyn Clock>,
        batch: BatchConfig,
        pipeline: Pipeline,
        key: Arc<OnceLock<CollectorKey>>,
        key_id: KeyId,
        delivery: Delivery,
    ) -> Self {
        Self {
            buffer,
            stats: Stats::default(),
            clock,
            batch,
            pipeline: Mutex::new(pipeline),
            key,
            key_id,
            delivery: Mutex::new(delivery),
            audit_key: None,
        }
    }

    /// Pins the audit key every acknowledgement's receipt is checked against
    /// ([`Core::check_receipt`]).
    pub(crate) fn with_audit_key(mut self, key: Option<VerifierKey>) -> Self {
        self.audit_key = key;
        self
    }

    fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        // A panic while holding the lock cannot leave the pipeline in a state worse than losing the
        // batch in progress, so a poisoned lock is simply taken over.
        self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drains the buffer and seals every batch that is due (all pending spans when `force`), handing
    /// each to `emit` as soon as it is sealed. Nothing while the collector key is unknown.
    pub(crate) fn collect(&self, force: bool, emit: &mut dyn FnMut(SealedBatch)) {
        let now = self.clock.now_unix_nanos();
        self.pipeline().collect(&self.buffer, &self.stats, now, force, emit);
    }

    /// A fresh data key for a host that wraps data keys itself, when the next batch needs one.
    pub(crate) fn data_key_due(&self) -> Result<Option<DataKey>> {
        let now = self.clock.now_unix_nanos();
        self.pipeline().data_key_due(&self.buffer, now)
    }

    /// Installs a data key the host wrapped; counted as a key rotation.
    pub(crate) fn install_wrapped_key(&self, data_key: &DataKey, wrapped: Vec<u8>) -> Result<()> {
        let now = self.clock.now_unix_nanos();
        self.pipeline().install_wrapped_key(now, data_key, wrapped)?;
        Stats::add(&self.stats.key_rotations, 1);
        Ok(())
    }

    /// The collector key's SubjectPublicKeyInfo DER, once known.
    pub(crate) fn key_spki_der(&self) -> Option<Vec<u8>> {
        self.key.get().map(|k| k.spki_der().to_vec())
    }

    /// Drops what can never be sealed because the key never arrived; counted as failed.
    pub(crate) fn discard_unsealed(&self) -> u64 {
        if self.key.get().is_some() {
            return 0;
        }
        self.pipeline().discard(&self.buffer, &self.stats)
    }

    /// The fingerprint batches are (or will be) sealed to.
    pub(crate) fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn needs_key(&self) -> bool {
        self.key.get().is_none()
    }

    /// Installs a fetched collector key after checking it is the pinned one. Installing the same key
    /// again is a no-op.
    pub(crate) fn install_key_pem(&self, pem: &str) -> Result<()> {
        let key = CollectorKey::from_pem(pem)?;
        if key.key_id() != self.key_id {
            return Err(Error::FingerprintMismatch { expected: self.key_id.to_hex(), actual: key.key_id().to_hex() });
        }
        let _ = self.key.set(key);
        Ok(())
    }

    /// Feeds the outcome of one attempt at `span_count` spans in `bytes` bytes to the delivery state
    /// machine and counts what it decided (delivered, rejected, retried). Exhausted and deferred
    /// batches are counted by the caller when it spools, keeps or gives them up.
    pub(crate) fn after_attempt(
        &self,
        progress: &mut Progress,
        outcome: &SendOutcome,
        took: Duration,
        now: Duration,
        deadline: Option<Duration>,
        (span_count, bytes): (u32, usize),
    ) -> Step {
        // The jitter is drawn only for a backoff that uses it: on wasm32 each draw is a call out
        // to WebCrypto, and a delivered batch (the common case, once per edge request) needs none.
        let random =
            if matches!(outcome, SendOutcome::Retry { after: None, .. }) { crate::ids::random_unit() } else { 0.5 };
        let step = self
            .delivery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .after_attempt(progress, outcome, took, now, deadline, random);
        let s = &self.stats;
        match step {
            Step::Delivered => {
                Stats::add(&s.batches_sent, 1);
                Stats::add(&s.spans_sent, u64::from(span_count));
                Stats::add(&s.bytes_sent, bytes as u64);
            }
            Step::Rejected => self.give_up(span_count),
            Step::RetryIn(_) => Stats::add(&s.batches_retried, 1),
            Step::Exhausted | Step::Deferred => {}
        }
        step
    }

    /// With an audit key pinned, checks the receipt (`note`, the signed note the acknowledgement
    /// carried) of the batch `bytes` (whose header's batch id is `batch_id`) just delivered: it
    /// must be signed by the key, for this batch id and these exact bytes. Counts it in
    /// `receipts_verified` or `receipts_failed` (no receipt counts as failed); without a key,
    /// nothing. The worker and a host pump both end up here.
    pub(crate) fn check_receipt(&self, batch_id: &[u8; 16], bytes: &[u8], note: Option<&str>) {
        if let Some(pending) = self.pending_receipt(batch_id, bytes, note) {
            self.finish_receipt(&pending, None);
        }
    }

    /// [`Core::check_receipt`] up to the signature check, which a host with native Ed25519 does
    /// itself: `None` without an audit key.
    pub(crate) fn pending_receipt(
        &self,
        batch_id: &[u8; 16],
        bytes: &[u8],
        note: Option<&str>,
    ) -> Option<PendingReceipt> {
        Some(PendingReceipt::new(self.audit_key.as_ref()?, note, batch_id, bytes))
    }

    /// Counts `pending` in `receipts_verified` or `receipts_failed`, given the host's verdict on
    /// its signatures (`None`: checked here).
    pub(crate) fn finish_receipt(&self, pending: &PendingReceipt, host_verified: Option<bool>) {
        let s = &self.stats;
        Stats::add(if pending.holds(host_verified) { &s.receipts_verified } else { &s.receipts_failed }, 1);
    }

    /// Counts a batch of `span_count` spans as given up on.
    pub(crate) fn give_up(&self, span_count: u32) {
        Stats::add(&self.stats.batches_failed, 1);
        Stats::add(&self.stats.spans_failed, u64::from(span_count));
    }

    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    pub(crate) fn spool_retry_in(&self, failures: u32, after: Option<Duration>) -> Duration {
        self.delivery.lock().unwrap_or_else(std::sync::PoisonError::into_inner).spool_retry_in(failures, after)
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(self.buffer.len() as u64)
    }

    /// Spans recorded but not yet delivered, spooled or given up on.
    pub(crate) fn in_flight(&self) -> u64 {
        pending(&self.snapshot())
    }
}

/// Spans in `s` recorded but not yet delivered, spooled or given up on.
fn pending(s: &StatsSnapshot) -> u64 {
    s.spans_recorded
        .saturating_sub(s.spans_sent - s.spans_unspooled + s.spans_failed - s.spans_spool_failed + s.spans_spooled)
}

/// What `flush` or `shutdown` achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Spans the collector acknowledged during the call.
    pub spans_delivered: u64,
    /// Spans written to the on-disk spool during the call (delivered later).
    pub spans_spooled: u64,
    /// Spans given up on during the call (rejected, or retries exhausted with no spool).
    pub spans_failed: u64,
    /// Spans still buffered or being retried when the call returned (non-zero after a timeout, or
    /// while the collector key is still being fetched).
    pub spans_pending: u64,
    /// Spans dropped during the call because the buffer was full or the tracer was shut down.
    pub spans_dropped: u64,
}

impl FlushReport {
    /// True when nothing was lost or left pending.
    pub fn is_complete(&self) -> bool {
        self.spans_failed == 0 && self.spans_pending == 0 && self.spans_dropped == 0
    }

    /// Spans not delivered to the collector by the end of the call (spooled, failed or pending).
    pub fn undelivered(&self) -> u64 {
        self.spans_spooled + self.spans_failed + self.spans_pending + self.spans_dropped
    }

    /// The report of a call that started when the counters were `before`: delivered, spooled, failed
    /// and dropped are deltas (spool replays of earlier batches excluded); pending is everything
    /// recorded and not yet delivered, spooled or given up on.
    pub(crate) fn between(core: &Core, before: &StatsSnapshot) -> Self {
        let after = core.snapshot();
        let live = |s: &StatsSnapshot| (s.spans_sent - s.spans_unspooled, s.spans_failed - s.spans_spool_failed);
        let (sent0, failed0) = live(before);
        let (sent1, failed1) = live(&after);
        Self {
            spans_delivered: sent1.saturating_sub(sent0),
            spans_spooled: after.spans_spooled.saturating_sub(before.spans_spooled),
            spans_failed: failed1.saturating_sub(failed0),
            spans_pending: pending(&after),
            spans_dropped: after.spans_dropped.saturating_sub(before.spans_dropped),
        }
    }
}
