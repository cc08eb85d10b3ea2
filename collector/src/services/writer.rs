//! The writer: one thread that group-commits ingest requests. Each request waits for the commit of
//! the transaction holding its batch, so an acknowledged batch is durable; requests arriving while a
//! commit runs (or within `max_wait` of the first one being queued) share the next transaction,
//! which is what makes durable ingest fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{CommitOutcome, NewBatch, Store};

/// The writer's answer for one batch.
pub type CommitReply = Result<CommitOutcome, String>;

struct Job {
    batch: NewBatch,
    reply: oneshot::Sender<CommitReply>,
    /// When the batch was queued: the gathering window counts from the oldest job's arrival.
    queued: Instant,
}

/// Hands batches to the writer thread. Dropping every handle stops the writer after it has committed
/// what is queued.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::SyncSender<Job>,
    metrics: Arc<Metrics>,
    alive: Arc<AtomicBool>,
    stopped: watch::Receiver<()>,
}

/// Marks the writer dead when its thread ends, by return or by panic: `/readyz` then fails and the
/// server shuts down with an error, instead of answering 503 to every batch forever.
struct AliveGuard {
    alive: Arc<AtomicBool>,
    _stopped: watch::Sender<()>,
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
    }
}

/// Committed groups waiting to be freed by the dropper thread. It frees a group in well under a
/// commit's time, so the queue is normally empty; a few cover a burst of short commits.
const DROP_QUEUE: usize = 4;

/// The writer's queue is full: answer 503 with `Retry-After`.
#[derive(Debug)]
pub struct Overloaded;

impl Writer {
    /// Starts the writer thread; what it commits is handed to `live` viewers.
    pub fn spawn(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        live: LiveHub,
        max_batches: usize,
        max_wait: Duration,
        queue: usize,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let m = metrics.clone();
        // Freeing a committed group (hundreds of thousands of small allocations) is work the
        // writer should not do between commits: a second thread drops them. Bounded, so memory
        // is too: when that thread falls behind, the writer frees the group itself.
        let (drop_tx, drop_rx) = mpsc::sync_channel::<Arc<Vec<NewBatch>>>(DROP_QUEUE);
        // Nothing waits for it either, so the writer gets the core first (crate::priority).
        std::thread::Builder::new().name("tracex-dropper".into()).spawn(move || {
            crate::priority::set_this_thread_nice(crate::priority::BACKGROUND_NICE);
            drop_rx.into_iter().for_each(drop);
        })?;
        let alive = Arc::new(AtomicBool::new(true));
        let (stopped_tx, stopped) = watch::channel(());
        let guard = AliveGuard { alive: alive.clone(), _stopped: stopped_tx };
        let handle = std::thread::Builder::new().name("tracex-writer".into()).spawn(move || {
            let _guard = guard;
            run(&*store, &m, &live, &rx, max_batches.max(1), max_wait, &drop_tx);
        })?;
        Ok((Self { tx, metrics, alive, stopped }, handle))
    }

    /// False once the writer thread has ended (it only ends on its own by panicking).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Resolves when the writer thread ends.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopped.clone();
        async move { while rx.changed().await.is_ok() {} }
    }

    /// Queues a batch; the receiver resolves once it is committed (or the commit failed).
    pub fn submit(&self, batch: NewBatch) -> Result<oneshot::Receiver<CommitReply>, Overloaded> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { batch, reply, queued: Instant::now() }) {
            Ok(()) => {
                self.metrics.writer_queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Overloaded),
        }
    }
}

fn run(
    store: &dyn Store,
    metrics: &Metrics,
    live: &LiveHub,
    rx: &mpsc::Receiver<Job>,
    max_batches: usize,
    max_wait: Duration,
    dropper: &mpsc::SyncSender<Arc<Vec<NewBatch>>>,
) {
    let mut gaps = crate::audit::gaps::Tracker::default();
    while let Ok(first) = rx.recv() {
        // From the first job's arrival, not from now: a job that queued up during the previous
        // commit has waited its window already, and under saturation waiting again only idled the
        // writer — 5 ms a commit of ≈ 90 ms, 5–8 % of its time in the ingest bench (2026-12-06).
        // An idle writer still gathers for `max_wait` after a lone job.
        let deadline = first.queued + max_wait;
        let mut jobs = vec![first];
        while jobs.len() < max_batches {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(j) => jobs.push(j),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        metrics.writer_queue_depth.fetch_sub(i64::try_from(jobs.len()).unwrap_or(i64::MAX), Ordering::Relaxed);
        let (batches, replies): (Vec<NewBatch>, Vec<_>) = jobs.into_iter().map(|j| (j.batch, j.reply)).unzip();
        // Shared with the live tail's fan-out thread; whichever lets go last frees it.
        let batches = Arc::new(batches);
        let started = Instant::now();
        let result = live.commit_here(|| store.commit(&batches));
        metrics.commit_seconds.observe(started.elapsed());
        match result {
            Ok(outcomes) => {
                metrics.commits.fetch_add(1, Ordering::Relaxed);
                // A batch of a trace at its span cap was stored only in part, and which spans were
                // kept is the store's business: the live tail shows whole batches or nothing.
                let stored = outcomes.iter().map(|o| matches!(o, CommitOutcome::Stored { over_cap: 0, .. })).collect();
                live.publish(&batches, stored);
                for (b, o) in batches.iter().zip(&outcomes) {
                    if matches!(o, CommitOutcome::Stored { .. }) {
                        gaps.stored(&b.project, b.instance_id, b.sequence, &b.sdk_name, b.service());
                    }
                }
                if let Some(missing) = gaps.take_changed() {
                    *metrics.batches_missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = missing;
                }
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    match outcome {
                        CommitOutcome::Stored { spans, over_cap, .. } => {
                            metrics.batches_ingested.fetch_add(1, Ordering::Relaxed);
                            metrics.spans_ingested.fetch_add(spans as u64, Ordering::Relaxed);
                            metrics.spans_over_trace_cap.fetch_add(over_cap as u64, Ordering::Relaxed);
                        }
                        CommitOutcome::Duplicate => {
                            metrics.batches_duplicate.fetch_add(1, Ordering::Relaxed);
                        }
                        // Counted as a rejection (`batch_id_conflict`) by the endpoint.
                        CommitOutcome::Conflict => {}
                    }
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "commit failed; nothing of these batches was stored");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
        // The dropper runs at background priority and can fall behind a busy machine's other
        // threads; then the refused send hands the group back, and it is freed here rather than
        // queued without bound.
        let _ = dropper.try_send(batches);
    }
}
