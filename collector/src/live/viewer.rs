//! One viewer of the live tail: its filter, its queue (bounded in bytes) and what it missed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::Detail;
use crate::metrics::Metrics;
use crate::store::TraceQuery;

/// What a viewer receives, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// `{"spans":[…]}`: committed spans that match the viewer's filter.
    Spans {
        /// The rendered JSON object.
        json: String,
        /// Spans in it.
        count: usize,
    },
    /// Spans skipped for this viewer since its last message (see `Viewer::skip`).
    Lagged(u64),
}

/// What a queued `lagged` message is charged against the byte budget: it is small, but a viewer
/// that never reads must not collect an unbounded number of them.
const LAGGED_COST: usize = 64;

/// A viewer as the fan-out thread sees it.
pub(crate) struct Viewer {
    /// Only spans of this project.
    pub project: String,
    /// Only spans matching this (span-level filters only).
    pub filter: TraceQuery,
    /// How much of each span it is sent.
    pub detail: Detail,
    /// Bytes queued and not yet taken by the viewer's stream.
    queued_bytes: AtomicUsize,
    /// Spans skipped and not yet reported.
    missed: AtomicU64,
    budget: usize,
    /// Taken when the hub closes, which ends the viewer's stream once it has read what is queued.
    tx: Mutex<Option<UnboundedSender<Message>>>,
    metrics: Arc<Metrics>,
}

impl Viewer {
    pub(crate) fn new(
        project: String,
        filter: TraceQuery,
        detail: Detail,
        budget: usize,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, UnboundedReceiver<Message>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let v = Self {
            project,
            filter,
            detail,
            queued_bytes: AtomicUsize::new(0),
            missed: AtomicU64::new(0),
            budget,
            tx: Mutex::new(Some(tx)),
            metrics,
        };
        (Arc::new(v), rx)
    }

    fn send(&self, m: Message, cost: usize) -> bool {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else { return false };
        self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
        if tx.send(m).is_err() {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues `count` rendered spans, or, when the viewer's queue is over its budget, counts them
    /// as missed. Missed spans are reported before the next spans that get through. An event larger
    /// than the whole budget (256 spans with large attributes) still goes to a viewer that has read
    /// everything, or such spans would be skipped for every viewer for ever.
    pub(crate) fn offer(&self, json: String, count: usize) {
        let len = json.len();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued + len > self.budget {
            self.missed.fetch_add(count as u64, Ordering::AcqRel);
            self.metrics.live_spans_skipped.fetch_add(count as u64, Ordering::Relaxed);
            return;
        }
        let missed = self.missed.swap(0, Ordering::AcqRel);
        if missed > 0 && !self.send(Message::Lagged(missed), LAGGED_COST) {
            return;
        }
        if self.send(Message::Spans { json, count }, len) {
            self.metrics.live_spans_sent.fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    /// Counts `n` spans the fan-out never looked at (it was behind) as missed. A viewer that has
    /// read everything is parked waiting for a message, so it gets one now; one that has not will
    /// find the count once it has read its queue.
    pub(crate) fn skip(&self, n: u64) {
        self.metrics.live_spans_skipped.fetch_add(n, Ordering::Relaxed);
        self.missed.fetch_add(n, Ordering::AcqRel);
        if self.queued_bytes.load(Ordering::Acquire) == 0 {
            let missed = self.missed.swap(0, Ordering::AcqRel);
            if missed > 0 {
                let _ = self.send(Message::Lagged(missed), LAGGED_COST);
            }
        }
    }

    /// Ends the viewer's stream after what is queued.
    pub(crate) fn close(&self) {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// The receiving end of one viewer; dropping it unregisters the viewer.
pub struct Subscription {
    rx: UnboundedReceiver<Message>,
    viewer: Arc<Viewer>,
    _registration: super::hub::Registration,
}

impl Subscription {
    pub(crate) fn new(
        rx: UnboundedReceiver<Message>,
        viewer: Arc<Viewer>,
        registration: super::hub::Registration,
    ) -> Self {
        Self { rx, viewer, _registration: registration }
    }

    /// The next message: queued spans in commit order, a [`Message::Lagged`] with what was skipped
    /// once the queue is read, `None` once the hub has closed and the queue is read.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(m)) => {
                let cost = match &m {
                    Message::Spans { json, .. } => json.len(),
                    Message::Lagged(_) => LAGGED_COST,
                };
                self.viewer.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
                Poll::Ready(Some(m))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.viewer.missed.swap(0, Ordering::AcqRel) {
                0 => Poll::Pending,
                n => Poll::Ready(Some(Message::Lagged(n))),
            },
        }
    }

    /// The next message (see [`Subscription::poll_next`]).
    pub async fn next(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}
