//! The native worker: two named threads.
//!
//! - `tracex-batcher` sleeps until a batch is ready (the buffer unparks it) or the scheduled delay
//!   passes, then drains, redacts, encodes and seals, and hands sealed batches to the sender through
//!   a bounded channel. It never touches the network; when the channel is full, new batches go to
//!   the spool, or, without a spool, the batcher waits for the sender (back-pressure).
//!   While the collector key is unknown (only its fingerprint was configured) it fetches the key
//!   with backoff instead, and seals nothing: spans wait in the bounded buffer, in memory.
//! - `tracex-sender` sends each batch and does what the delivery state machine (`delivery.rs`)
//!   decides: count it delivered or rejected, wait and retry, or spool what is exhausted; when idle
//!   it replays the spool. With a transport that can be shared ([`Transport::try_clone`]) there
//!   are up to [`BatchConfig::max_concurrent_exports`](crate::config::BatchConfig) of them
//!   (`tracex-sender`, `tracex-sender-2`, …), each with one batch in flight on its own keep-alive
//!   connection; one at a time replays the spool.
//!
//! Flush and shutdown travel as markers behind the batches, so a reply means everything before it
//! was delivered, spooled or given up on: whichever sender takes a marker waits until every batch
//! taken before it is done.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::delivery::{Progress, Step};
use crate::error::{Error, Result};
use crate::ids::random_unit;
use crate::seal::SealedBatch;
use crate::shared::{Core, FlushReport};
use crate::spool::Spool;
use crate::stats::Stats;
use crate::tracer::KeySource;
use crate::transport::{RetryPolicy, SendOutcome, Transport};

/// How often an idle sender looks at the spool.
const SPOOL_POLL: Duration = Duration::from_millis(500);
/// Spooled batches replayed between two live messages: bounds how long a new batch waits behind
/// the replay of a backlog.
const SPOOL_REPLAY_CHUNK: usize = 16;
/// How long shutdown waits after aborting retries for the sender to spool what is left.
const ABORT_GRACE: Duration = Duration::from_secs(2);

enum Control {
    Flush(mpsc::SyncSender<()>),
    Shutdown(mpsc::SyncSender<()>),
}

enum Outgoing {
    Batch(SealedBatch),
    Marker(mpsc::SyncSender<()>),
    Stop(mpsc::SyncSender<()>),
}

type SharedSpool = Option<Arc<Mutex<Spool>>>;

pub(crate) struct Worker {
    control: mpsc::Sender<Control>,
    batcher: JoinHandle<()>,
    senders: Vec<JoinHandle<()>>,
    abort: Arc<AtomicBool>,
}

impl Worker {
    pub(crate) fn spawn(
        core: &Arc<Core>,
        transport: Box<dyn Transport>,
        key_source: Option<KeySource>,
        retry: RetryPolicy,
        spool: Option<Spool>,
    ) -> Result<Self> {
        let (control, control_rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::sync_channel(core.batch.max_pending_batches);
        let spool: SharedSpool = spool.map(|s| Arc::new(Mutex::new(s)));
        let abort = Arc::new(AtomicBool::new(false));
        let spawn_err = |e: std::io::Error| Error::Config(format!("cannot start the worker thread: {e}"));

        // One sender per batch in flight, each with its own handle on the transport (a transport
        // that cannot be shared sends one batch at a time).
        let mut transports = vec![transport];
        while transports.len() < core.batch.max_concurrent_exports {
            match transports[0].try_clone() {
                Some(t) => transports.push(t),
                None => break,
            }
        }
        let dispatch = Arc::new(Dispatch::new(out_rx));
        let replay = Arc::new(Mutex::new(Replay { next_try: Instant::now(), attempts: 0 }));
        let mut senders = Vec::with_capacity(transports.len());
        for (i, transport) in transports.into_iter().enumerate() {
            let sender = SenderLoop {
                core: core.clone(),
                transport,
                spool: spool.clone(),
                replay: replay.clone(),
                abort: abort.clone(),
                epoch: Instant::now(),
            };
            let dispatch = dispatch.clone();
            let name = if i == 0 { "tracex-sender".to_owned() } else { format!("tracex-sender-{}", i + 1) };
            senders.push(thread::Builder::new().name(name).spawn(move || sender.run(&dispatch)).map_err(spawn_err)?);
        }
        let key = KeyFetch { source: key_source, retry, attempts: 0, next_try: Instant::now() };
        let batcher_core = core.clone();
        let batcher = thread::Builder::new()
            .name("tracex-batcher".into())
            .spawn(move || batcher_loop(&batcher_core, key, &control_rx, &out_tx, &spool))
            .map_err(spawn_err)?;
        core.buffer.set_waker(batcher.thread().clone());
        Ok(Self { control, batcher, senders, abort })
    }

    pub(crate) fn flush(&self, core: &Core, timeout: Duration) -> Result<FlushReport> {
        let before = core.snapshot();
        let (tx, rx) = mpsc::sync_channel(1);
        self.control.send(Control::Flush(tx)).map_err(|_| Error::Shutdown)?;
        self.batcher.thread().unpark();
        match rx.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => Ok(FlushReport::between(core, &before)),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Shutdown),
        }
    }

    pub(crate) fn shutdown(self, core: &Core, timeout: Duration) -> Result<FlushReport> {
        let before = core.snapshot();
        let (tx, rx) = mpsc::sync_channel(1);
        self.control.send(Control::Shutdown(tx)).map_err(|_| Error::Shutdown)?;
        self.batcher.thread().unpark();
        let finished = match rx.recv_timeout(timeout) {
            Ok(()) => true,
            Err(_) => {
                // Out of time: stop retrying and spool (or count) whatever is left.
                self.abort.store(true, Ordering::Release);
                for sender in &self.senders {
                    sender.thread().unpark();
                }
                self.batcher.thread().unpark();
                rx.recv_timeout(ABORT_GRACE).is_ok()
            }
        };
        if finished {
            let _ = self.batcher.join();
            for sender in self.senders {
                let _ = sender.join();
            }
        }
        // Otherwise a sender is stuck inside one HTTP request; it exits when that times out.
        Ok(FlushReport::between(core, &before))
    }
}

// === batcher ===

/// Fetching the collector key when only its fingerprint was pinned: on the batcher, which has
/// nothing to seal until the key is there.
struct KeyFetch {
    source: Option<KeySource>,
    retry: RetryPolicy,
    attempts: u32,
    next_try: Instant,
}

impl KeyFetch {
    /// One attempt when one is due (or `now_anyway`: the last chance at shutdown); true once the
    /// key is installed. Flushes do not bring attempts forward, so a service that flushes on every
    /// request during an outage does not send the collector a key request each time. A wrong key
    /// (fingerprint mismatch) is retried like an unreachable collector: the right one may be
    /// deployed meanwhile.
    fn poll(&mut self, core: &Core, now_anyway: bool) -> bool {
        if !core.needs_key() {
            return true;
        }
        let Some(source) = self.source.as_mut() else { return false };
        if !now_anyway && Instant::now() < self.next_try {
            return false;
        }
        if source().and_then(|pem| core.install_key_pem(&pem)).is_ok() {
            return true;
        }
        self.attempts = self.attempts.saturating_add(1);
        let wait = self.retry.key_fetch_backoff(self.attempts, random_unit());
        self.next_try = Instant::now() + wait;
        false
    }

    /// When the next attempt is due, while the key is missing.
    fn due(&self, core: &Core) -> Option<Instant> {
        (core.needs_key() && self.source.is_some()).then_some(self.next_try)
    }
}

/// The next control message, if any; a shutdown once every tracer handle is gone (deliver what
/// is left, then stop).
fn poll_control(control: &mpsc::Receiver<Control>) -> Option<Control> {
    match control.try_recv() {
        Ok(c) => Some(c),
        Err(mpsc::TryRecvError::Empty) => None,
        Err(mpsc::TryRecvError::Disconnected) => {
            let (tx, _rx) = mpsc::sync_channel(1);
            Some(Control::Shutdown(tx))
        }
    }
}

fn batcher_loop(
    core: &Core,
    mut key: KeyFetch,
    control: &mpsc::Receiver<Control>,
    out: &mpsc::SyncSender<Outgoing>,
    spool: &SharedSpool,
) {
    let delay = core.batch.scheduled_delay;
    let mut deadline = Instant::now() + delay;
    loop {
        let now = Instant::now();
        let wake = key.due(core).map_or(deadline, |k| k.min(deadline));
        // Re-armed, then looked at, then parked: a batch that becomes ready or a flush that
        // arrives after the look unparks this thread, and one that came before is seen. Neither
        // the flag nor an unpark alone is enough: a wake-up can be consumed elsewhere — a
        // blocking hand-off to busy senders parks this thread too — and ready batches and
        // flushes then waited for the scheduled delay (a flush on a tracer with a long delay
        // waited out its whole timeout).
        core.buffer.clear_notified();
        let mut ctl = poll_control(control);
        // (While the key is unknown nothing is sealed, so a full buffer is no reason to stay up.)
        let ready = core.buffer.batch_ready() && !core.needs_key();
        if ctl.is_none() && now < wake && !ready {
            thread::park_timeout(wake - now);
            ctl = poll_control(control);
        }
        core.clock.resync();
        key.poll(core, matches!(ctl, Some(Control::Shutdown(_))));
        let timer = Instant::now() >= deadline;
        core.collect(timer || ctl.is_some(), &mut |batch| hand_off(core, out, spool, batch));
        if timer || ctl.is_some() {
            deadline = Instant::now() + delay;
        }
        match ctl {
            None => {}
            Some(Control::Flush(reply)) => {
                // The sender is gone only when shutting down.
                let sent = out.send(Outgoing::Marker(reply));
                if sent.is_err() {
                    return;
                }
            }
            Some(Control::Shutdown(reply)) => {
                // Spans that never got a key can never be sealed; plaintext is not spooled.
                core.discard_unsealed();
                let _ = out.send(Outgoing::Stop(reply));
                return;
            }
        }
    }
}

/// Queues a sealed batch for the sender. When the sender is behind: with a spool, the batch goes to
/// disk (and is replayed later); without one, the batcher waits for room — back-pressure that ends
/// up as counted drops at the span buffer, never as silently discarded sealed batches.
fn hand_off(core: &Core, out: &mpsc::SyncSender<Outgoing>, spool: &SharedSpool, batch: SealedBatch) {
    match out.try_send(Outgoing::Batch(batch)) {
        Ok(()) | Err(TrySendError::Disconnected(Outgoing::Marker(_) | Outgoing::Stop(_))) => {}
        Err(TrySendError::Full(Outgoing::Batch(b))) if spool.is_some() => spool_or_fail(core, spool, &b),
        Err(TrySendError::Full(msg)) => {
            if let Err(mpsc::SendError(Outgoing::Batch(b))) = out.send(msg) {
                spool_or_fail(core, spool, &b);
            }
        }
        Err(TrySendError::Disconnected(Outgoing::Batch(b))) => spool_or_fail(core, spool, &b),
    }
}

fn spool_or_fail(core: &Core, spool: &SharedSpool, batch: &SealedBatch) {
    let s = &core.stats;
    let n = u64::from(batch.span_count);
    let written = spool.as_ref().map(|sp| match sp.lock() {
        Ok(mut sp) => sp.write(batch),
        Err(_) => Err(std::io::Error::other("spool lock poisoned")),
    });
    match written {
        Some(Ok(evicted)) => {
            Stats::add(&s.batches_spooled, 1);
            Stats::add(&s.spans_spooled, n);
            // Older spooled batches made room: given up on, as spooled batches that failed.
            for spans in evicted {
                core.give_up(spans);
                Stats::add(&s.spans_spool_failed, u64::from(spans));
            }
        }
        Some(Err(_)) => {
            Stats::add(&s.spool_errors, 1);
            core.give_up(batch.span_count);
        }
        None => core.give_up(batch.span_count),
    }
}

// === sender ===

/// The senders' shared end of the batcher's queue. Each message taken gets a ticket in queue
/// order; a batch's ticket stays in `in_flight` until it is delivered, spooled or given up on, and
/// a marker is answered once no earlier ticket is left.
struct Dispatch {
    rx: Mutex<mpsc::Receiver<Outgoing>>,
    tickets: Mutex<Tickets>,
    done: Condvar,
}

#[derive(Default)]
struct Tickets {
    next: u64,
    in_flight: BTreeSet<u64>,
}

/// What a sender took from the queue.
enum Taken {
    Batch(u64, SealedBatch),
    Marker(u64, mpsc::SyncSender<()>),
    Stop(u64, mpsc::SyncSender<()>),
    Idle,
    Closed,
}

impl Dispatch {
    fn new(rx: mpsc::Receiver<Outgoing>) -> Self {
        Self { rx: Mutex::new(rx), tickets: Mutex::new(Tickets::default()), done: Condvar::new() }
    }

    /// The next message, waiting at most `wait`. (No code panics while holding these locks;
    /// a poisoned one is used as it is.)
    fn take(&self, wait: Duration) -> Taken {
        let rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        let msg = rx.recv_timeout(wait);
        // Numbered before the queue is let go, so tickets follow the queue's order.
        let mut t = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = t.next;
        match msg {
            Ok(Outgoing::Batch(b)) => {
                t.next += 1;
                t.in_flight.insert(ticket);
                Taken::Batch(ticket, b)
            }
            Ok(Outgoing::Marker(reply)) => {
                t.next += 1;
                Taken::Marker(ticket, reply)
            }
            Ok(Outgoing::Stop(reply)) => {
                t.next += 1;
                Taken::Stop(ticket, reply)
            }
            Err(RecvTimeoutError::Timeout) => Taken::Idle,
            Err(RecvTimeoutError::Disconnected) => Taken::Closed,
        }
    }

    /// The batch with `ticket` is delivered, spooled or given up on.
    fn finished(&self, ticket: u64) {
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner).in_flight.remove(&ticket);
        self.done.notify_all();
    }

    /// Waits until every batch taken before `ticket` is finished.
    fn wait_before(&self, ticket: u64) {
        let mut t = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        while t.in_flight.first().is_some_and(|first| *first < ticket) {
            t = self.done.wait(t).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

struct SenderLoop {
    core: Arc<Core>,
    transport: Box<dyn Transport>,
    spool: SharedSpool,
    /// Held by the sender replaying the spool (one at a time: two would send the same entry
    /// twice); the others skip the replay rather than wait.
    replay: Arc<Mutex<Replay>>,
    abort: Arc<AtomicBool>,
    /// Origin of the delivery state machine's clock.
    epoch: Instant,
}

/// When the spool is due to be tried again, shared by the senders.
struct Replay {
    next_try: Instant,
    attempts: u32,
}

impl SenderLoop {
    /// Hands the receipt of the batch `bytes` just acknowledged to the core's check (with an
    /// audit key pinned). A spooled batch has no `batch_id` at hand: it is read from the header
    /// (one that does not parse cannot match any receipt, so it counts as failed).
    fn check_receipt(&mut self, batch_id: Option<[u8; 16]>, bytes: &[u8]) {
        let receipt = self.transport.take_receipt();
        let batch_id = batch_id.or_else(|| crate::seal::parse(bytes).ok().map(|e| e.header.batch_id));
        let receipt = receipt.filter(|_| batch_id.is_some());
        self.core.check_receipt(&batch_id.unwrap_or_default(), bytes, receipt.as_deref());
    }

    fn run(mut self, dispatch: &Dispatch) {
        loop {
            match dispatch.take(SPOOL_POLL) {
                Taken::Batch(ticket, b) => {
                    self.deliver(&b);
                    dispatch.finished(ticket);
                }
                Taken::Marker(ticket, reply) => {
                    dispatch.wait_before(ticket);
                    let _ = reply.send(());
                }
                Taken::Stop(ticket, reply) => {
                    // The other senders see the queue closed once the batcher, which sent this
                    // last, is gone.
                    dispatch.wait_before(ticket);
                    let _ = reply.send(());
                    return;
                }
                Taken::Idle => {}
                Taken::Closed => return,
            }
            // After every message, not only when idle: a sender that is never idle for a whole
            // poll interval (steady batches, frequent flushes) drained a backlog of 267 spooled
            // batches at 14 a minute (tests/sdk_faults.rs in the collector). Cheap when the spool
            // is empty or backing off.
            self.replay_spool(SPOOL_REPLAY_CHUNK);
        }
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    fn deliver(&mut self, batch: &SealedBatch) {
        let mut progress = Progress::default();
        loop {
            if self.aborted() {
                spool_or_fail(&self.core, &self.spool, batch);
                return;
            }
            let started = Instant::now();
            let outcome = self.transport.send(&batch.bytes);
            let took = started.elapsed();
            let now = self.epoch.elapsed();
            let meta = (batch.span_count, batch.bytes.len());
            match self.core.after_attempt(&mut progress, &outcome, took, now, None, meta) {
                Step::Delivered => {
                    self.check_receipt(Some(batch.batch_id), &batch.bytes);
                    return;
                }
                Step::Rejected => return,
                Step::RetryIn(wait) => {
                    if !self.sleep(wait) {
                        spool_or_fail(&self.core, &self.spool, batch);
                        return;
                    }
                }
                // No deadline is given, so never deferred; treated like exhausted all the same.
                Step::Exhausted | Step::Deferred => {
                    spool_or_fail(&self.core, &self.spool, batch);
                    return;
                }
            }
        }
    }

    /// Sleeps unless aborted; false when aborted.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.aborted() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::park_timeout(end - now);
        }
    }

    /// Sends up to `max` spooled batches, oldest first, one attempt each.
    fn replay_spool(&mut self, max: usize) {
        let Some(spool) = self.spool.clone() else { return };
        let replay = self.replay.clone();
        let Ok(mut state) = replay.try_lock() else { return };
        if self.aborted() || Instant::now() < state.next_try {
            return;
        }
        let core = self.core.clone();
        let s = &core.stats;
        for _ in 0..max {
            let Ok(mut sp) = spool.lock() else { return };
            if sp.is_empty() {
                return;
            }
            let entry = match sp.oldest() {
                Ok(Some(e)) => e,
                Ok(None) => return,
                Err(_) => {
                    Stats::add(&s.spool_errors, 1);
                    return;
                }
            };
            let Ok(bytes) = Spool::read(&entry) else {
                Stats::add(&s.spool_errors, 1);
                let _ = sp.remove(&entry);
                continue;
            };
            drop(sp);
            let n = u64::from(entry.span_count);
            match self.transport.send(&bytes) {
                SendOutcome::Delivered => {
                    self.check_receipt(None, &bytes);
                    Stats::add(&s.batches_sent, 1);
                    Stats::add(&s.spans_sent, n);
                    Stats::add(&s.bytes_sent, bytes.len() as u64);
                    Stats::add(&s.batches_unspooled, 1);
                    Stats::add(&s.spans_unspooled, n);
                    state.attempts = 0;
                    if let Ok(mut sp) = spool.lock() {
                        let _ = sp.remove(&entry);
                    }
                }
                SendOutcome::Reject { .. } => {
                    self.core.give_up(entry.span_count);
                    Stats::add(&s.spans_spool_failed, n);
                    if let Ok(mut sp) = spool.lock() {
                        let _ = sp.remove(&entry);
                    }
                }
                SendOutcome::Retry { after, .. } => {
                    state.attempts = state.attempts.saturating_add(1);
                    state.next_try = Instant::now() + self.core.spool_retry_in(state.attempts, after);
                    return;
                }
            }
        }
    }
}
