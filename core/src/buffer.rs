//! The bounded, lock-free span buffer between callers and the batcher.
//!
//! Policy when full: the span being recorded (the newest) is dropped and counted; the caller never
//! blocks and memory never grows beyond the capacity chosen at start. Dropping the newest rather than
//! the oldest keeps the buffer a plain MPMC queue with no eviction race, and a burst that overflows
//! loses its tail, which is visible in `spans_dropped`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;

use crate::model::SpanData;
use crate::stats::Stats;

#[cfg(not(feature = "worker"))]
use self::grow::Queue;
#[cfg(feature = "worker")]
use crossbeam_queue::ArrayQueue as Queue;

/// A bounded MPMC queue of finished spans that wakes the batcher when a batch is ready.
///
/// Spans travel boxed: a span is built in its box when it starts, and ending it pushes a pointer.
/// By value, the 224-byte `SpanData` was copied three times between `start` and the queue slot
/// (stack to `Span`, out of the `Option` at `end`, into the slot; `memcpy` calls of 216 and 264
/// bytes in the disassembly), and `memcpy` took as much of the recording thread's samples as all
/// the rest of the hot path (`perf`, `benches/span.rs`).
#[derive(Debug)]
pub(crate) struct SpanBuffer {
    queue: Queue<Box<SpanData>>,
    wake_at: usize,
    notified: AtomicBool,
    waker: OnceLock<Thread>,
    warned: AtomicBool,
    /// Sealed spans' boxes on their way back from the batcher to recording threads, emptied, each
    /// keeping its attribute vector's memory: the hot path reuses memory instead of allocating what
    /// another thread frees (which makes glibc trim and re-fault pages on every batch). A span
    /// travels in one box from `start` to this pool; moving it out of the box into the batch and
    /// returning box and attribute vector through two pools cost the batcher ≈ 175 ns a span
    /// (`perf`, sdk_e2e bench).
    box_pool: Queue<Box<SpanData>>,
}

/// Largest attribute vector worth keeping with a pooled box.
const POOLED_CAPACITY: usize = 32;

impl SpanBuffer {
    pub(crate) fn new(capacity: usize, wake_at: usize) -> Self {
        Self {
            queue: Queue::new(capacity.max(1)),
            wake_at: wake_at.clamp(1, capacity.max(1)),
            notified: AtomicBool::new(false),
            waker: OnceLock::new(),
            warned: AtomicBool::new(false),
            box_pool: Queue::new((capacity / 4).clamp(1, 4096)),
        }
    }

    /// Records a finished span. Lock-free; the only possible syscall is one unpark per full batch.
    #[inline]
    pub(crate) fn push(&self, span: Box<SpanData>, stats: &Stats) -> bool {
        if self.queue.push(span).is_err() {
            Stats::add(&stats.spans_dropped, 1);
            if !self.warned.swap(true, Ordering::Relaxed) {
                #[cfg(feature = "worker")]
                eprintln!(
                    "tracex: span buffer full ({} spans); dropping new spans and counting them",
                    self.queue.capacity()
                );
            }
            return false;
        }
        // Wake the batcher once per ready batch, not once per span.
        if self.queue.len() >= self.wake_at && !self.notified.swap(true, Ordering::AcqRel) {
            if let Some(t) = self.waker.get() {
                t.unpark();
            }
        }
        true
    }

    /// A box holding `SpanData::default()` (its empty attribute vector may have capacity), reused
    /// when one is available.
    #[inline]
    pub(crate) fn span_box(&self) -> Box<SpanData> {
        self.box_pool.pop().unwrap_or_default()
    }

    /// Returns a sealed span's box for reuse, emptied here on the batcher; its attribute vector
    /// keeps its memory unless it grew past [`POOLED_CAPACITY`].
    pub(crate) fn recycle(&self, mut span: Box<SpanData>) {
        let mut attrs = std::mem::take(&mut span.attributes);
        attrs.clear();
        *span = SpanData::default();
        if attrs.capacity() <= POOLED_CAPACITY {
            span.attributes = attrs;
        }
        let _ = self.box_pool.push(span);
    }

    /// The oldest span, in its box ([`recycle`](Self::recycle) returns the box once it is sealed).
    pub(crate) fn pop(&self) -> Option<Box<SpanData>> {
        self.queue.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Most spans the buffer holds.
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Registers the batcher thread to be unparked when a batch is ready.
    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    pub(crate) fn set_waker(&self, t: Thread) {
        let _ = self.waker.set(t);
    }

    /// Whether a batch's worth of spans is waiting.
    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    pub(crate) fn batch_ready(&self) -> bool {
        self.queue.len() >= self.wake_at
    }

    /// Called by the batcher before it looks at the buffer, to re-arm the wake-up.
    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    pub(crate) fn clear_notified(&self) {
        self.notified.store(false, Ordering::Release);
    }
}

// === impl grow::Queue ===

/// The queue without a worker (wasm32): one thread records and pumps, so a lock-free ring buys
/// nothing, and `ArrayQueue::new` initialises every slot up front — 16,384 slots (then holding
/// `SpanData` inline) plus the attribute pool. In the WASM package under Node that made each
/// `new Tracer` cost 8.6 ms of CPU, almost all in `ArrayQueue::new` and the allocator
/// (`--cpu-prof`); with this queue, 0.9 ms (a warm tracer; in workerd's first request lazy WASM
/// compilation still dominates). It has the same bound and the same refusal when full, but grows
/// with what is actually queued.
/// (Compiled for tests too: the core's own tests always have the worker.)
#[cfg(any(test, not(feature = "worker")))]
mod grow {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    #[derive(Debug)]
    pub(crate) struct Queue<T> {
        items: Mutex<VecDeque<T>>,
        capacity: usize,
    }

    impl<T> Queue<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self { items: Mutex::new(VecDeque::new()), capacity }
        }

        fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
            // A panic while holding the lock aborts on wasm32 (panic=abort); elsewhere the queue
            // itself is still consistent, so a poisoned lock is taken over.
            self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Appends `item`, or hands it back when the queue holds `capacity` items.
        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            let mut q = self.items();
            if q.len() >= self.capacity {
                return Err(item);
            }
            q.push_back(item);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.items().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.items().len()
        }

        #[cfg_attr(feature = "worker", allow(dead_code))] // compiled for tests with the worker too
        pub(crate) fn capacity(&self) -> usize {
            self.capacity
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_growing_queue_keeps_the_bound_and_the_order() {
        let q = grow::Queue::new(2);
        assert_eq!((q.push(1), q.push(2), q.push(3)), (Ok(()), Ok(()), Err(3)));
        assert_eq!(q.len(), 2);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(2), None));
        assert_eq!(q.push(4), Ok(()));
    }

    #[test]
    fn full_buffer_drops_newest_and_counts() {
        let stats = Stats::default();
        let b = SpanBuffer::new(2, 2);
        let span = |n: &'static str| Box::new(SpanData { name: n.into(), ..Default::default() });
        assert!(b.push(span("a"), &stats));
        assert!(b.push(span("b"), &stats));
        assert!(!b.push(span("c"), &stats));
        assert_eq!(stats.snapshot(0).spans_dropped, 1);
        assert_eq!(b.pop().unwrap().name, "a");
        assert_eq!(b.pop().unwrap().name, "b");
        assert!(b.pop().is_none());
    }
}
