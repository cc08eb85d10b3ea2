//! Head sampling, decided once when a span starts so a sampled-out span costs almost nothing.

use crate::context::SpanContext;
use crate::model::TraceId;

/// Which spans are recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// Record everything.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record a fraction of traces, decided by the trace id so every service agrees.
    TraceIdRatio(f64),
    /// Follow the parent's sampled flag when there is a parent; use the inner sampler for roots.
    ParentBased(Box<Sampler>),
}

impl Default for Sampler {
    /// `ParentBased(AlwaysOn)`, as in OpenTelemetry.
    fn default() -> Self {
        Self::ParentBased(Box::new(Self::AlwaysOn))
    }
}

impl Sampler {
    /// `ParentBased(TraceIdRatio(ratio))`, the usual production setting.
    pub fn ratio(ratio: f64) -> Self {
        Self::ParentBased(Box::new(Self::TraceIdRatio(ratio)))
    }

    /// The share of root spans recorded (1 always on, 0 always off): what a host that starts spans
    /// on its own side (the JS layer) applies to roots.
    pub fn root_ratio(&self) -> f64 {
        match self {
            Self::AlwaysOn => 1.0,
            Self::AlwaysOff => 0.0,
            Self::TraceIdRatio(r) => *r,
            Self::ParentBased(root) => root.root_ratio(),
        }
    }

    /// Decides whether a new span in `trace_id` under `parent` is recorded.
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match self {
            Self::AlwaysOn => true,
            Self::AlwaysOff => false,
            Self::TraceIdRatio(ratio) => ratio_sampled(*ratio, trace_id),
            Self::ParentBased(root) => match parent {
                Some(p) if p.is_valid() => p.is_sampled(),
                _ => root.should_sample(None, trace_id),
            },
        }
    }
}

/// The same rule as OpenTelemetry's `TraceIdRatioBased`: compare the low 8 bytes of the trace id,
/// shifted right by one, with `ratio · 2^63`, so SDKs in different languages make the same choice.
fn ratio_sampled(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..]);
    (u64::from_be_bytes(low) >> 1) < bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::new_trace_id;
    use crate::model::{SpanId, TraceFlags};

    #[test]
    fn ratio_is_roughly_respected() {
        let s = Sampler::TraceIdRatio(0.25);
        let n = (0..40_000).filter(|_| s.should_sample(None, new_trace_id())).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        assert!(!Sampler::TraceIdRatio(0.0).should_sample(None, new_trace_id()));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(None, new_trace_id()));
    }

    #[test]
    fn parent_based_follows_the_parent() {
        let s = Sampler::ratio(0.0);
        let mut parent = SpanContext {
            trace_id: new_trace_id(),
            span_id: SpanId([1; 8]),
            trace_flags: TraceFlags::SAMPLED,
            ..Default::default()
        };
        assert!(s.should_sample(Some(&parent), parent.trace_id));
        parent.trace_flags = TraceFlags::NONE;
        assert!(!Sampler::default().should_sample(Some(&parent), parent.trace_id));
        assert!(Sampler::default().should_sample(None, new_trace_id()));
    }
}
