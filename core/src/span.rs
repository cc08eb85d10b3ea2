//! The caller's handle on a span: start, attributes, events, status, end.
//!
//! Everything here runs on the caller's thread and takes no lock: a span is a plain struct until it
//! ends, then it is moved into the lock-free buffer. A span that was sampled out carries only its
//! context (so children and `traceparent` still work) and records nothing.

use std::borrow::Cow;

use crate::batch::dedup_last_wins;
use crate::context::{self, ContextGuard, SpanContext};
use crate::ids::{new_root_ids_at, new_span_id};
use crate::model::{
    Event, KeyValue, Link, SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE, SPAN_FLAGS_CONTEXT_IS_REMOTE, SpanData, SpanKind, Status,
    StatusCode, Str, TraceFlags, Value,
};
use crate::tracer::Tracer;

/// Where a new span's parent comes from.
#[derive(Clone, Debug, Default)]
pub enum Parent {
    /// The current span of this thread, if any (the default).
    #[default]
    Current,
    /// No parent: start a new trace.
    Root,
    /// An explicit parent, e.g. extracted from an incoming `traceparent`.
    Context(SpanContext),
}

/// Options for a new span; finish with [`SpanBuilder::start`].
#[must_use = "a span builder does nothing until `start` is called"]
#[derive(Debug)]
pub struct SpanBuilder<'t> {
    tracer: &'t Tracer,
    name: Str,
    kind: SpanKind,
    parent: Parent,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
    start_time: Option<u64>,
}

impl<'t> SpanBuilder<'t> {
    #[inline]
    pub(crate) fn new(tracer: &'t Tracer, name: Str) -> Self {
        Self {
            tracer,
            name,
            kind: SpanKind::Internal,
            parent: Parent::Current,
            attributes: Vec::new(),
            links: Vec::new(),
            start_time: None,
        }
    }

    /// Sets the span kind (default `Internal`).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets where the parent comes from (default: the current span).
    pub fn parent(mut self, parent: Parent) -> Self {
        self.parent = parent;
        self
    }

    /// Continues a remote trace (shorthand for `parent(Parent::Context(cx))`).
    pub fn child_of(self, cx: SpanContext) -> Self {
        self.parent(Parent::Context(cx))
    }

    /// Starts a new trace.
    pub fn root(self) -> Self {
        self.parent(Parent::Root)
    }

    /// Adds an attribute at start (visible to samplers in future versions).
    pub fn attribute(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Adds attributes at start.
    pub fn attributes(mut self, kvs: impl IntoIterator<Item = KeyValue>) -> Self {
        self.attributes.extend(kvs);
        self
    }

    /// Links to another span.
    pub fn link(mut self, cx: &SpanContext, attributes: Vec<KeyValue>) -> Self {
        self.links.push(link_to(cx, attributes));
        self
    }

    /// Uses an explicit start time (unix nanoseconds) instead of now.
    pub fn start_time(mut self, unix_nanos: u64) -> Self {
        self.start_time = Some(unix_nanos);
        self
    }

    /// Starts the span. Decides sampling now; a sampled-out span records nothing.
    #[inline]
    pub fn start(self) -> Span<'t> {
        let tracer = self.tracer;
        Span { tracer, inner: self.start_unbound() }
    }

    /// Starts the span as an [`UnboundSpan`], which does not borrow the tracer (for bindings that
    /// keep a span in an object of their own language).
    #[inline]
    pub fn start_unbound(self) -> UnboundSpan {
        let tracer = self.tracer;
        let parent = match self.parent {
            Parent::Current => context::current(),
            Parent::Root => None,
            Parent::Context(cx) => Some(cx).filter(SpanContext::is_valid),
        };
        // A new trace's id starts with its start time (`new_trace_id_at`): the clock is read here
        // for a root, and later only for a sampled span that has a parent.
        let mut start = self.start_time;
        let (trace_id, span_id) = match &parent {
            Some(p) => (p.trace_id, new_span_id()),
            None => new_root_ids_at(*start.get_or_insert_with(|| tracer.now())),
        };
        let sampled = tracer.sample(parent.as_ref(), trace_id);
        let trace_state = parent.as_ref().and_then(|p| p.trace_state.clone());
        let cx = SpanContext {
            trace_id,
            span_id,
            trace_flags: if sampled { TraceFlags::SAMPLED } else { TraceFlags::NONE },
            is_remote: false,
            trace_state,
        };
        if !sampled {
            return UnboundSpan { data: None, cx };
        }
        let mut flags = u32::from(cx.trace_flags.0);
        if let Some(p) = &parent {
            flags |= SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
            if p.is_remote {
                flags |= SPAN_FLAGS_CONTEXT_IS_REMOTE;
            }
        }
        let limits = tracer.limits();
        // Filled field by field in a recycled box holding `SpanData::default()` (see `SpanBuffer`):
        // a struct literal would be built on the stack and copied in.
        let mut data = tracer.span_box();
        data.trace_id = trace_id;
        data.span_id = span_id;
        if let Some(state) = cx.trace_state.as_deref() {
            state.clone_into(&mut data.trace_state);
        }
        data.parent_span_id = parent.as_ref().map(|p| p.span_id);
        data.flags = flags;
        data.name = self.name;
        data.kind = self.kind;
        data.start_time_unix_nano = start.unwrap_or_else(|| tracer.now());
        // The recycled box keeps an empty attribute vector with its memory: kept unless the
        // builder brought attributes of its own.
        if !self.attributes.is_empty() {
            data.attributes = self.attributes;
        }
        data.links = self.links;
        if data.attributes.len() > limits.max_attributes as usize {
            // Duplicates at start count once, as they do when set one by one.
            dedup_last_wins(&mut data.attributes);
        }
        truncate_count(&mut data.attributes, limits.max_attributes, &mut data.dropped_attributes_count);
        truncate_count(&mut data.links, limits.max_links, &mut data.dropped_links_count);
        UnboundSpan { data: Some(data), cx }
    }
}

/// Setting an attribute once the span holds `max` of them (rare: only here is there any work
/// beyond an append). Appends may hold repeated keys (they are resolved on the worker), so they are
/// resolved now: the limit is on distinct keys, and a key already present is replaced, never
/// dropped — as when the span is below the limit.
#[cold]
fn set_at_limit(d: &mut SpanData, kv: KeyValue, max: usize) {
    dedup_last_wins(&mut d.attributes);
    if let Some(existing) = d.attributes.iter_mut().find(|a| a.key == kv.key) {
        existing.value = kv.value;
    } else if d.attributes.len() < max {
        d.attributes.push(kv);
    } else {
        d.dropped_attributes_count = d.dropped_attributes_count.saturating_add(1);
    }
}

fn truncate_count<T>(v: &mut Vec<T>, max: u32, dropped: &mut u32) {
    let max = max as usize;
    if v.len() > max {
        *dropped = dropped.saturating_add(u32::try_from(v.len() - max).unwrap_or(u32::MAX));
        v.truncate(max);
    }
}

fn link_to(cx: &SpanContext, attributes: Vec<KeyValue>) -> Link {
    let mut flags = u32::from(cx.trace_flags.0) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
    if cx.is_remote {
        flags |= SPAN_FLAGS_CONTEXT_IS_REMOTE;
    }
    Link {
        trace_id: cx.trace_id,
        span_id: cx.span_id,
        trace_state: cx.trace_state.as_deref().map(str::to_owned).unwrap_or_default(),
        attributes,
        dropped_attributes_count: 0,
        flags,
    }
}

/// A span in progress. Ends when dropped, or explicitly with [`Span::end`].
#[must_use = "a span ends (and is recorded) as soon as it is dropped"]
#[derive(Debug)]
pub struct Span<'t> {
    tracer: &'t Tracer,
    inner: UnboundSpan,
}

impl Span<'_> {
    /// The span's context (for children and `traceparent`).
    pub fn context(&self) -> &SpanContext {
        &self.inner.cx
    }

    /// The W3C `traceparent` to send downstream.
    pub fn traceparent(&self) -> String {
        self.inner.cx.to_traceparent()
    }

    /// False when the span was sampled out (or has ended): setters are then no-ops.
    pub fn is_recording(&self) -> bool {
        self.inner.is_recording()
    }

    /// Sets an attribute. A later value for the same key replaces the earlier one (resolved on the
    /// worker, so this stays an append).
    #[inline]
    pub fn set_attribute(&mut self, key: impl Into<Str>, value: impl Into<Value>) -> &mut Self {
        self.inner.set_attribute(self.tracer, key, value);
        self
    }

    /// Sets several attributes.
    pub fn set_attributes(&mut self, kvs: impl IntoIterator<Item = KeyValue>) -> &mut Self {
        self.inner.set_attributes(self.tracer, kvs);
        self
    }

    /// Adds a timestamped event (e.g. `retry`).
    pub fn add_event(&mut self, name: impl Into<Str>, attributes: Vec<KeyValue>) -> &mut Self {
        self.inner.add_event(self.tracer, name, None, attributes);
        self
    }

    /// Adds an event with an explicit time (unix nanoseconds).
    pub fn add_event_at(&mut self, name: impl Into<Str>, time_unix_nano: u64, attributes: Vec<KeyValue>) -> &mut Self {
        self.inner.add_event(self.tracer, name, Some(time_unix_nano), attributes);
        self
    }

    /// Links this span to another.
    pub fn add_link(&mut self, cx: &SpanContext, attributes: Vec<KeyValue>) -> &mut Self {
        self.inner.add_link(self.tracer, cx, attributes);
        self
    }

    /// Records an error: an `exception` event (`exception.type`, `exception.message`) and status
    /// `Error` with the message.
    pub fn record_error(&mut self, err: &(dyn std::error::Error + 'static)) -> &mut Self {
        let message = err.to_string();
        let ty = error_type_name(err);
        self.inner.record_exception(self.tracer, ty, message, None);
        self
    }

    /// Sets the status. `Ok` is final; `Unset` never overrides a status that was set; only `Error`
    /// keeps a description (OpenTelemetry: it "MUST be IGNORED" for `Ok` and `Unset`).
    pub fn set_status(&mut self, status: Status) -> &mut Self {
        self.inner.set_status(status);
        self
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl Into<Str>) -> &mut Self {
        self.inner.update_name(name);
        self
    }

    /// Makes this span the current one on this thread until the guard is dropped, so spans started
    /// meanwhile become its children.
    pub fn enter(&self) -> ContextGuard {
        context::attach(self.inner.cx.clone())
    }

    /// Ends the span now.
    #[inline]
    pub fn end(mut self) {
        self.inner.end(self.tracer, None);
    }

    /// Ends the span at an explicit time (unix nanoseconds).
    pub fn end_at(mut self, unix_nanos: u64) {
        self.inner.end(self.tracer, Some(unix_nanos));
    }
}

impl Drop for Span<'_> {
    #[inline]
    fn drop(&mut self) {
        self.inner.end(self.tracer, None);
    }
}

// === impl UnboundSpan ===

/// A span in progress that does not borrow its tracer: every call that needs the tracer (limits,
/// clock, recording) takes it as an argument. The Python binding keeps one in each `Span` object.
/// Unlike [`Span`], nothing happens on drop: a span that is never ended is never recorded.
#[derive(Debug)]
pub struct UnboundSpan {
    data: Option<Box<SpanData>>,
    cx: SpanContext,
}

impl UnboundSpan {
    /// The span's context (for children and `traceparent`).
    pub fn context(&self) -> &SpanContext {
        &self.cx
    }

    /// False when the span was sampled out or has ended: setters are then no-ops.
    pub fn is_recording(&self) -> bool {
        self.data.is_some()
    }

    /// See [`Span::set_attribute`].
    #[inline]
    pub fn set_attribute(&mut self, tracer: &Tracer, key: impl Into<Str>, value: impl Into<Value>) {
        if let Some(d) = &mut self.data {
            let max = tracer.limits().max_attributes as usize;
            let kv = KeyValue { key: key.into(), value: value.into() };
            if d.attributes.len() < max {
                d.attributes.push(kv);
            } else {
                set_at_limit(d, kv, max);
            }
        }
    }

    /// See [`Span::set_attributes`].
    pub fn set_attributes(&mut self, tracer: &Tracer, kvs: impl IntoIterator<Item = KeyValue>) {
        if let Some(d) = &mut self.data {
            let max = tracer.limits().max_attributes as usize;
            for kv in kvs {
                if d.attributes.len() < max {
                    d.attributes.push(kv);
                } else {
                    set_at_limit(d, kv, max);
                }
            }
        }
    }

    /// Adds an event at `time_unix_nano`, or now.
    pub fn add_event(
        &mut self,
        tracer: &Tracer,
        name: impl Into<Str>,
        time_unix_nano: Option<u64>,
        mut attributes: Vec<KeyValue>,
    ) {
        if let Some(d) = &mut self.data {
            let limits = tracer.limits();
            if d.events.len() < limits.max_events as usize {
                let mut dropped = 0;
                truncate_count(&mut attributes, limits.max_attributes_per_event, &mut dropped);
                d.events.push(Event {
                    time_unix_nano: time_unix_nano.unwrap_or_else(|| tracer.now()),
                    name: name.into(),
                    attributes,
                    dropped_attributes_count: dropped,
                });
            } else {
                d.dropped_events_count = d.dropped_events_count.saturating_add(1);
            }
        }
    }

    /// See [`Span::add_link`].
    pub fn add_link(&mut self, tracer: &Tracer, cx: &SpanContext, attributes: Vec<KeyValue>) {
        if let Some(d) = &mut self.data {
            if d.links.len() < tracer.limits().max_links as usize {
                d.links.push(link_to(cx, attributes));
            } else {
                d.dropped_links_count = d.dropped_links_count.saturating_add(1);
            }
        }
    }

    /// Records an exception the OpenTelemetry way: an `exception` event with `exception.type`,
    /// `exception.message` (and `exception.stacktrace` when given), and status `Error` with the
    /// message (the type when the message is empty).
    pub fn record_exception(
        &mut self,
        tracer: &Tracer,
        type_name: impl Into<Value>,
        message: String,
        stacktrace: Option<String>,
    ) {
        if self.data.is_none() {
            return;
        }
        let type_name = type_name.into();
        let mut attrs = vec![KeyValue::new("exception.type", type_name.clone())];
        attrs.push(KeyValue::new("exception.message", message.clone()));
        if let Some(st) = stacktrace {
            attrs.push(KeyValue::new("exception.stacktrace", st));
        }
        self.add_event(tracer, "exception", None, attrs);
        let status = if message.is_empty() {
            type_name.as_str().map_or_else(|| Status::error("error"), |t| Status::error(t.to_owned()))
        } else {
            Status::error(message)
        };
        self.set_status(status);
    }

    /// See [`Span::set_status`].
    pub fn set_status(&mut self, status: Status) {
        if let Some(d) = &mut self.data {
            match (d.status.code, status.code) {
                (StatusCode::Ok, _) | (_, StatusCode::Unset) => {}
                (_, StatusCode::Ok) => d.status = Status::ok(),
                (_, StatusCode::Error) => d.status = status,
            }
        }
    }

    /// See [`Span::update_name`].
    pub fn update_name(&mut self, name: impl Into<Str>) {
        if let Some(d) = &mut self.data {
            d.name = name.into();
        }
    }

    /// Ends the span (now, or at `at` unix nanoseconds) and records it into `tracer`. Later calls
    /// do nothing.
    #[inline]
    pub fn end(&mut self, tracer: &Tracer, at: Option<u64>) {
        if let Some(mut d) = self.data.take() {
            d.end_time_unix_nano = at.unwrap_or_else(|| tracer.now()).max(d.start_time_unix_nano);
            tracer.record_boxed(d);
        }
    }
}

fn error_type_name(err: &(dyn std::error::Error + 'static)) -> String {
    // `Debug` of most error types starts with the type or variant name: `Os { .. }`, `ParseIntError { .. }`.
    let dbg = format!("{err:?}");
    let end = dbg.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(dbg.len());
    if end == 0 { Cow::Borrowed("Error").into_owned() } else { dbg[..end].to_owned() }
}
