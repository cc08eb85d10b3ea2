//! Span context: W3C `traceparent`/`tracestate` and the current span of this thread.

use std::cell::RefCell;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{SpanId, TraceFlags, TraceId};

/// Longest `tracestate` kept (W3C allows dropping beyond 512 characters).
pub const MAX_TRACE_STATE_LEN: usize = 512;

/// What a child span needs from its parent, and what crosses process boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// W3C trace flags (sampled bit).
    pub trace_flags: TraceFlags,
    /// True when this context came from another process (`traceparent`).
    pub is_remote: bool,
    /// W3C `tracestate`, passed through untouched.
    pub trace_state: Option<Arc<str>>,
}

impl SpanContext {
    /// True when both ids are valid.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// True when the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.trace_flags.is_sampled()
    }

    /// Formats a W3C `traceparent` header value (version 00).
    pub fn to_traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.trace_flags.0)
    }

    /// Parses a W3C `traceparent` (and optional `tracestate`) into a remote context.
    ///
    /// Follows the W3C rules: lower-case hex only, version `ff` is invalid, all-zero ids are invalid,
    /// version 00 has exactly 55 characters, later versions may append `-` and more fields.
    pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Result<Self> {
        let bad = |why: &str| Error::InvalidContext(format!("traceparent {why}: {traceparent:?}"));
        let tp = traceparent.trim();
        let b = tp.as_bytes();
        if !tp.is_ascii() {
            return Err(bad("is not ASCII"));
        }
        if b.len() < 55 {
            return Err(bad("is too short"));
        }
        let version = &tp[0..2];
        if version == "ff" || !is_lower_hex(version) {
            return Err(bad("has an invalid version"));
        }
        if version == "00" && b.len() != 55 {
            return Err(bad("has the wrong length for version 00"));
        }
        if b.len() > 55 && b[55] != b'-' {
            return Err(bad("has trailing garbage"));
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(bad("has misplaced separators"));
        }
        let (tid, sid, flags) = (&tp[3..35], &tp[36..52], &tp[53..55]);
        if !is_lower_hex(tid) || !is_lower_hex(sid) || !is_lower_hex(flags) {
            return Err(bad("must be lower-case hex"));
        }
        let trace_id = TraceId::from_hex(tid)?;
        let span_id = SpanId::from_hex(sid)?;
        if !trace_id.is_valid() || !span_id.is_valid() {
            return Err(bad("has an all-zero id"));
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| bad("has invalid flags"))?;
        let trace_state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACE_STATE_LEN && s.is_ascii())
            .map(Arc::from);
        Ok(Self { trace_id, span_id, trace_flags: TraceFlags(flags & 0x01), is_remote: true, trace_state })
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

// === current span ===

thread_local! {
    static CURRENT: RefCell<Vec<SpanContext>> = const { RefCell::new(Vec::new()) };
}

/// The innermost entered span context on this thread, if any.
pub fn current() -> Option<SpanContext> {
    CURRENT.with(|c| c.borrow().last().cloned())
}

/// Makes `cx` the current context until the returned guard is dropped.
pub fn attach(cx: SpanContext) -> ContextGuard {
    CURRENT.with(|c| c.borrow_mut().push(cx));
    ContextGuard { _not_send: std::marker::PhantomData }
}

/// Restores the previous current context when dropped. Not `Send`: it belongs to the thread whose
/// stack it changed.
#[must_use = "the context is detached as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ContextGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.borrow_mut().pop();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let cx = SpanContext::from_traceparent(TP, Some("congo=t61rcWkgMzE")).unwrap();
        assert!(cx.is_remote && cx.is_sampled() && cx.is_valid());
        assert_eq!(cx.to_traceparent(), TP);
        assert_eq!(cx.trace_state.as_deref(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn invalid_traceparents_are_rejected() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            let err = SpanContext::from_traceparent(bad, None).unwrap_err();
            assert_eq!(err.code(), "TRACEX_INVALID_CONTEXT", "{bad:?}");
        }
    }

    #[test]
    fn future_versions_may_append_fields() {
        let cx =
            SpanContext::from_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever", None)
                .unwrap();
        assert_eq!(cx.span_id.to_hex(), "00f067aa0ba902b7");
    }

    #[test]
    fn attach_nests_and_restores() {
        assert!(current().is_none());
        let a = SpanContext::from_traceparent(TP, None).unwrap();
        let g1 = attach(a.clone());
        let mut b = a.clone();
        b.span_id = SpanId([1; 8]);
        {
            let _g2 = attach(b.clone());
            assert_eq!(current(), Some(b));
        }
        assert_eq!(current(), Some(a));
        drop(g1);
        assert!(current().is_none());
    }
}
