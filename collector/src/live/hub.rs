//! The hub: who is watching, and the fan-out thread that hands them committed spans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Detail;
use super::viewer::{Subscription, Viewer};
use crate::endpoints::json;
use crate::metrics::Metrics;
use crate::store::{CommitOutcome, NewBatch, StoreResult, TraceQuery};

/// Committed groups waiting for the fan-out thread. Past it the writer skips the group (and
/// counts it) rather than wait: a group can hold thousands of spans, and a few queued cover a
/// burst while bounding what the hub keeps alive.
const GROUPS_QUEUED: usize = 8;
/// Spans per `spans` event: bounds one event's size, so that one large commit cannot exceed a
/// viewer's byte budget all at once and be skipped whole.
const SPANS_PER_EVENT: usize = 256;

/// How many may watch, and how much each may have queued.
#[derive(Clone, Copy, Debug)]
pub struct LiveLimits {
    /// Streams one API key may hold open.
    pub per_key: usize,
    /// Streams open at once, all keys together.
    pub total: usize,
    /// Bytes of rendered spans queued for one viewer before spans are skipped for it.
    pub buffer_bytes: usize,
    /// Spans sent to one viewer per second at most (a second's worth in a burst); 0: no limit.
    pub spans_per_second: u32,
}

/// A viewer's allowance of spans ([`LiveLimits::spans_per_second`]), kept by the fan-out thread.
#[derive(Clone, Copy, Debug)]
struct Allowance {
    spans: f64,
    at: std::time::Instant,
}

impl Allowance {
    fn full(rate: u32, now: std::time::Instant) -> Self {
        Self { spans: f64::from(rate), at: now }
    }

    fn refill(&mut self, rate: u32, now: std::time::Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * f64::from(rate);
        self.spans = (self.spans + earned).min(f64::from(rate));
        self.at = now;
    }

    /// Takes one span's worth; false when none is left (the span is skipped for this viewer).
    fn take(&mut self, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        if self.spans >= 1.0 {
            self.spans -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a stream was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The key holds [`LiveLimits::per_key`] streams already.
    TooManyForKey,
    /// [`LiveLimits::total`] streams are open already.
    TooMany,
    /// The collector is shutting down.
    Closed,
}

struct Group {
    batches: Arc<Vec<NewBatch>>,
    /// Which batches were stored (duplicates, conflicts and batches of a trace at its span cap are
    /// not shown: what a viewer sees is exactly what a query would find).
    stored: Vec<bool>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    viewers: Vec<(u64, Arc<Viewer>)>,
    per_key: HashMap<String, usize>,
    closed: bool,
}

struct Shared {
    registry: Mutex<Registry>,
    /// Viewers registered: the writer hands nothing over while it is 0.
    watching: AtomicUsize,
    /// Spans per project in groups the fan-out thread never saw (it was behind).
    skipped: Mutex<HashMap<String, u64>>,
    limits: LiveLimits,
    metrics: Arc<Metrics>,
    /// Leaves this collector's writer committed and the fleet poller has not reached yet
    /// (`None`: not in a fleet; see [`super::fleet`]).
    own_leaves: Option<Mutex<std::collections::BTreeSet<u64>>>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_watching(&self, n: usize) {
        self.watching.store(n, Ordering::Release);
        self.metrics.live_viewers.store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// Hands committed spans to live viewers. Cheap to clone; the fan-out thread ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct LiveHub {
    tx: SyncSender<Group>,
    shared: Arc<Shared>,
}

/// A viewer's place in the registry; dropping it (with the stream) unregisters the viewer.
pub(crate) struct Registration {
    id: u64,
    key_id: String,
    shared: Arc<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = self.shared.registry();
        r.viewers.retain(|(id, _)| *id != self.id);
        if let Some(n) = r.per_key.get_mut(&self.key_id) {
            *n -= 1;
            if *n == 0 {
                r.per_key.remove(&self.key_id);
            }
        }
        self.shared.set_watching(r.viewers.len());
    }
}

impl LiveHub {
    /// Starts the fan-out thread.
    /// With `fleet`, batches other collectors commit to the shared database are shown too
    /// ([`super::fleet`]): the hub then remembers which leaves this collector committed itself.
    pub fn spawn(limits: LiveLimits, metrics: Arc<Metrics>, fleet: bool) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(GROUPS_QUEUED);
        let shared = Arc::new(Shared {
            registry: Mutex::default(),
            watching: AtomicUsize::new(0),
            skipped: Mutex::default(),
            limits,
            metrics,
            own_leaves: fleet.then(Mutex::default),
        });
        let s = shared.clone();
        std::thread::Builder::new().name("tracex-live".into()).spawn(move || run(&s, &rx))?;
        Ok(Self { tx, shared })
    }

    /// Registers a viewer of `project`'s spans that match `filter` for the API key `key_id`.
    pub fn subscribe(
        &self,
        key_id: &str,
        project: String,
        filter: TraceQuery,
        detail: Detail,
    ) -> Result<Subscription, Refused> {
        let limits = self.shared.limits;
        let mut r = self.shared.registry();
        if r.closed {
            return Err(Refused::Closed);
        }
        if r.viewers.len() >= limits.total {
            return Err(Refused::TooMany);
        }
        let held = r.per_key.entry(key_id.to_owned()).or_default();
        if *held >= limits.per_key {
            return Err(Refused::TooManyForKey);
        }
        *held += 1;
        let (viewer, rx) = Viewer::new(project, filter, detail, limits.buffer_bytes, self.shared.metrics.clone());
        r.next_id += 1;
        let id = r.next_id;
        r.viewers.push((id, viewer.clone()));
        self.shared.set_watching(r.viewers.len());
        drop(r);
        let registration = Registration { id, key_id: key_id.to_owned(), shared: self.shared.clone() };
        Ok(Subscription::new(rx, viewer, registration))
    }

    /// Streams open now.
    pub fn viewers(&self) -> usize {
        self.shared.watching.load(Ordering::Acquire)
    }

    /// Called by the writer after a commit, with which batches were stored. Never waits: with
    /// nobody watching it does nothing, and when the fan-out thread is behind the group is skipped
    /// and its spans are reported to the project's viewers as missed.
    pub fn publish(&self, batches: &Arc<Vec<NewBatch>>, stored: Vec<bool>) {
        if self.shared.watching.load(Ordering::Acquire) == 0 || !stored.contains(&true) {
            return;
        }
        let group = Group { batches: batches.clone(), stored };
        if let Err(TrySendError::Full(g) | TrySendError::Disconnected(g)) = self.tx.try_send(group) {
            let mut skipped = self.shared.skipped.lock().unwrap_or_else(PoisonError::into_inner);
            for (b, _) in g.batches.iter().zip(&g.stored).filter(|(_, s)| **s) {
                *skipped.entry(b.project.clone()).or_default() += b.request.span_count() as u64;
            }
        }
    }

    /// Runs the writer's `commit` and, in a fleet, records the leaves it stored as this
    /// collector's own before anyone can ask: the set stays locked from before the commit until
    /// they are in it. The fleet poller asks about every leaf it reads after reading it, so a leaf
    /// it can see is either already in the set or the poller waits for the lock until it is. (The
    /// leaves were once recorded after the commit returned; a poll in between showed that batch a
    /// second time, which the fifty-viewer test caught once in several runs on PostgreSQL.)
    pub fn commit_here(
        &self,
        commit: impl FnOnce() -> StoreResult<Vec<CommitOutcome>>,
    ) -> StoreResult<Vec<CommitOutcome>> {
        let Some(own) = &self.shared.own_leaves else {
            return commit();
        };
        let mut own = own.lock().unwrap_or_else(PoisonError::into_inner);
        let result = commit();
        if let Ok(outcomes) = &result {
            own.extend(outcomes.iter().filter_map(|o| match o {
                CommitOutcome::Stored { leaf_index, .. } => *leaf_index,
                _ => None,
            }));
        }
        result
    }

    /// Whether batches other collectors commit are shown too.
    pub fn is_fleet(&self) -> bool {
        self.shared.own_leaves.is_some()
    }

    /// Whether this collector committed leaf `index` itself (forgotten once asked).
    pub(crate) fn take_own(&self, index: u64) -> bool {
        self.shared
            .own_leaves
            .as_ref()
            .is_some_and(|own| own.lock().unwrap_or_else(PoisonError::into_inner).remove(&index))
    }

    /// Forgets own leaves below `index` (the poller skipped ahead: nobody was watching).
    pub(crate) fn forget_own_below(&self, index: u64) {
        if let Some(own) = &self.shared.own_leaves {
            let mut own = own.lock().unwrap_or_else(PoisonError::into_inner);
            *own = own.split_off(&index);
        }
    }

    /// Ends every stream (after what each has queued) and refuses new ones: a shutdown must not
    /// wait for viewers that would otherwise watch for ever.
    pub fn close(&self) {
        let mut r = self.shared.registry();
        r.closed = true;
        for (_, v) in &r.viewers {
            v.close();
        }
    }
}

fn run(shared: &Shared, rx: &Receiver<Group>) {
    let mut text = String::new();
    let rate = shared.limits.spans_per_second;
    let mut allowances: HashMap<u64, Allowance> = HashMap::new();
    while let Ok(group) = rx.recv() {
        let (ids, viewers): (Vec<u64>, Vec<Arc<Viewer>>) =
            shared.registry().viewers.iter().map(|(id, v)| (*id, v.clone())).unzip();
        let skipped = std::mem::take(&mut *shared.skipped.lock().unwrap_or_else(PoisonError::into_inner));
        for (project, n) in skipped {
            viewers.iter().filter(|v| v.project == project).for_each(|v| v.skip(n));
        }
        let now = std::time::Instant::now();
        allowances.retain(|id, _| ids.contains(id));
        let mut allowed: Vec<Allowance> = ids
            .iter()
            .map(|id| {
                let a = allowances.entry(*id).or_insert_with(|| Allowance::full(rate, now));
                a.refill(rate, now);
                *a
            })
            .collect();
        fan_out(&group, &viewers, &mut allowed, rate, &mut text);
        for (id, a) in ids.iter().zip(allowed) {
            allowances.insert(*id, a);
        }
    }
}

/// One viewer's event being filled.
struct Pending {
    json: String,
    count: usize,
}

impl Pending {
    const OPEN: &'static str = "{\"spans\":[";

    fn flush(&mut self, viewer: &Viewer) {
        if self.count > 0 {
            self.json.push_str("]}");
            viewer.offer(std::mem::replace(&mut self.json, Self::OPEN.to_owned()), self.count);
            self.count = 0;
        }
    }
}

/// Filters the group's spans for every viewer, rendering each span at most once per detail.
fn fan_out(group: &Group, viewers: &[Arc<Viewer>], allowed: &mut [Allowance], rate: u32, text: &mut String) {
    let mut pending: Vec<Pending> =
        viewers.iter().map(|_| Pending { json: Pending::OPEN.to_owned(), count: 0 }).collect();
    let mut interested = Vec::with_capacity(viewers.len());
    // Spans over each viewer's allowance, reported once per group (not an event per span).
    let mut capped = vec![0u64; viewers.len()];
    for (batch, _) in group.batches.iter().zip(&group.stored).filter(|(_, s)| **s) {
        interested.clear();
        for i in (0..viewers.len()).filter(|&i| viewers[i].project == batch.project) {
            // A viewer without filters whose allowance is spent misses the whole batch: counted
            // at once rather than span by span (the allowance refills only between groups).
            if rate > 0 && allowed[i].spans < 1.0 && viewers[i].filter.is_unfiltered() {
                capped[i] += batch.request.span_count() as u64;
            } else {
                interested.push(i);
            }
        }
        if interested.is_empty() {
            continue;
        }
        for (resource, scope, span) in batch.request.spans() {
            let (mut summary, mut full): (Option<String>, Option<String>) = (None, None);
            for &i in &interested {
                if !viewers[i].filter.matches_span(resource, span, text) {
                    continue;
                }
                if !allowed[i].take(rate) {
                    capped[i] += 1;
                    continue;
                }
                let r = match viewers[i].detail {
                    Detail::Summary => summary.get_or_insert_with(|| json::span_summary_text(resource, span)),
                    Detail::Full => full.get_or_insert_with(|| json::span_text(resource, scope, span)),
                };
                let p = &mut pending[i];
                if p.count > 0 {
                    p.json.push(',');
                }
                p.json.push_str(r);
                p.count += 1;
                if p.count == SPANS_PER_EVENT {
                    p.flush(&viewers[i]);
                }
            }
        }
    }
    for ((p, v), n) in pending.iter_mut().zip(viewers).zip(capped) {
        p.flush(v);
        if n > 0 {
            v.skip(n);
        }
    }
}
