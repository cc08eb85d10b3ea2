//! Prometheus metrics, written by hand: a few counters, gauges and two latency histograms.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::gaps::GapGroup;

/// Reasons a batch is rejected (the `reason` label).
pub const REJECT_REASONS: [&str; 19] = [
    "unauthorized",
    "forbidden",
    "payload_too_large",
    "body_read_failed",
    "malformed_envelope",
    "unsupported_version",
    "unknown_key_id",
    "decrypt_failed",
    "malformed_payload",
    "invalid_span",
    "limit_exceeded",
    "request_timeout",
    "batch_id_conflict",
    "rate_limited",
    "overloaded",
    "store_unavailable",
    "malformed_compression",
    "unsupported_media_type",
    "shutting_down",
];

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// All collector metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches stored.
    pub batches_ingested: AtomicU64,
    /// Spans stored.
    pub spans_ingested: AtomicU64,
    /// Spans not stored because their trace was at its span cap.
    pub spans_over_trace_cap: AtomicU64,
    /// Retried batches acknowledged without storing again.
    pub batches_duplicate: AtomicU64,
    rejected: [AtomicU64; REJECT_REASONS.len()],
    /// RSA unwraps performed (data-key cache misses).
    pub rsa_unwraps: AtomicU64,
    /// Data-key cache hits.
    pub data_key_cache_hits: AtomicU64,
    /// Requests waiting for the writer.
    pub writer_queue_depth: AtomicI64,
    /// Transactions committed by the writer.
    pub commits: AtomicU64,
    /// Live-tail streams open.
    pub live_viewers: AtomicI64,
    /// Clear-text OTLP spans that failed validation and were answered as rejected (partial success).
    pub otlp_spans_rejected: AtomicU64,
    /// Attribute values (and names, messages) masked or removed in clear-text OTLP spans.
    pub otlp_values_redacted: AtomicU64,
    /// Spans sent to live viewers (once per viewer).
    pub live_spans_sent: AtomicU64,
    /// Spans skipped for live viewers that were behind (once per viewer), reported to them as
    /// `lagged`.
    pub live_spans_skipped: AtomicU64,
    /// Time to open (decrypt, inflate) and decode a batch.
    pub decrypt_seconds: Histogram,
    /// Time of one group commit.
    pub commit_seconds: Histogram,
    /// Sealed batches whose sequence numbers were skipped since start and have not arrived, per
    /// project, SDK and service (`audit::gaps::Tracker`; replaced by the writer when it changes).
    pub batches_missing: Mutex<Vec<(GapGroup, u64)>>,
    /// Audit checkpoints signed by this collector.
    pub audit_checkpoints: AtomicU64,
    /// Time to compute the root of and sign one audit checkpoint.
    pub audit_checkpoint_seconds: Histogram,
    /// Spans the OTLP export delivered (`crate::export`).
    pub export_spans_exported: AtomicU64,
    /// Spans the OTLP export's receiver rejected (400, a partial success, or one span over its
    /// size limit).
    pub export_spans_rejected: AtomicU64,
    /// Spans the OTLP export dropped undelivered because they were older than `max_lag_seconds`.
    pub export_spans_dropped_lag: AtomicU64,
    /// Spans a leaf claimed that were no longer stored when the export reached them (retention).
    pub export_spans_missing: AtomicU64,
    /// OTLP export requests delivered.
    pub export_requests: AtomicU64,
    /// OTLP export attempts that failed and were retried.
    pub export_retries: AtomicU64,
    /// How far behind the OTLP export is: since the first stored batch not yet delivered was
    /// received (ms; 0 when caught up).
    pub export_lag_ms: AtomicU64,
}

impl Metrics {
    /// Counts a rejection.
    pub fn reject(&self, reason: &str) {
        let i = REJECT_REASONS.iter().position(|r| *r == reason);
        debug_assert!(i.is_some(), "rejection code {reason:?} is missing from REJECT_REASONS");
        if let Some(i) = i {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Rejections so far for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        REJECT_REASONS.iter().position(|r| *r == reason).map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut out, "tracex_batches_ingested_total", "Batches durably stored.", r(&self.batches_ingested));
        counter(
            &mut out,
            "tracex_log_write_failures_total",
            "Log lines lost because stderr could not be written (full disk, closed pipe).",
            r(&crate::logs::WRITE_FAILURES),
        );
        counter(&mut out, "tracex_spans_ingested_total", "Spans durably stored.", r(&self.spans_ingested));
        counter(
            &mut out,
            "tracex_spans_over_trace_cap_total",
            "Spans not stored because their trace already held max_spans_per_trace spans.",
            r(&self.spans_over_trace_cap),
        );
        counter(
            &mut out,
            "tracex_batches_duplicate_total",
            "Retried batches acknowledged without storing again.",
            r(&self.batches_duplicate),
        );
        counter(
            &mut out,
            "tracex_rsa_unwraps_total",
            "RSA-OAEP data-key unwraps (cache misses).",
            r(&self.rsa_unwraps),
        );
        counter(
            &mut out,
            "tracex_data_key_cache_hits_total",
            "Batches opened with a cached data key.",
            r(&self.data_key_cache_hits),
        );
        counter(&mut out, "tracex_commits_total", "Group-commit transactions.", r(&self.commits));
        counter(
            &mut out,
            "tracex_audit_checkpoints_total",
            "Audit log checkpoints signed by this collector.",
            r(&self.audit_checkpoints),
        );
        counter(
            &mut out,
            "tracex_otlp_spans_rejected_total",
            "Clear-text OTLP spans that failed validation (answered as a partial success, not stored).",
            r(&self.otlp_spans_rejected),
        );
        counter(
            &mut out,
            "tracex_otlp_values_redacted_total",
            "Values masked or removed by the redaction rules in clear-text OTLP spans.",
            r(&self.otlp_values_redacted),
        );
        counter(&mut out, "tracex_live_spans_sent_total", "Spans sent to live-tail viewers.", r(&self.live_spans_sent));
        counter(
            &mut out,
            "tracex_live_spans_skipped_total",
            "Spans skipped for live-tail viewers that fell behind (reported to them as lagged).",
            r(&self.live_spans_skipped),
        );
        let _ = writeln!(
            out,
            "# HELP tracex_batches_rejected_total Batches rejected, by reason.\n# TYPE tracex_batches_rejected_total counter"
        );
        for (i, reason) in REJECT_REASONS.iter().enumerate() {
            let _ = writeln!(out, "tracex_batches_rejected_total{{reason=\"{reason}\"}} {}", r(&self.rejected[i]));
        }
        let _ = writeln!(
            out,
            "# HELP tracex_writer_queue_depth Ingest requests waiting for the writer.\n# TYPE tracex_writer_queue_depth gauge\ntracex_writer_queue_depth {}",
            self.writer_queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tracex_batches_missing Sealed batches skipped in their SDK instance's sequence since start and not arrived, by project, SDK and service (GET /api/v1/audit/gaps has the exact account, per instance).\n# TYPE tracex_batches_missing gauge"
        );
        for (g, n) in self.batches_missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(
                out,
                "tracex_batches_missing{{project=\"{}\",sdk=\"{}\",service=\"{}\"}} {n}",
                label(&g.project),
                label(&g.sdk_name),
                label(&g.service)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tracex_export_spans_total Spans the OTLP export handled, by outcome (each span counted once).\n# TYPE tracex_export_spans_total counter"
        );
        for (outcome, v) in [
            ("exported", &self.export_spans_exported),
            ("rejected", &self.export_spans_rejected),
            ("dropped_lag", &self.export_spans_dropped_lag),
            ("missing", &self.export_spans_missing),
        ] {
            let _ = writeln!(out, "tracex_export_spans_total{{outcome=\"{outcome}\"}} {}", r(v));
        }
        counter(&mut out, "tracex_export_requests_total", "OTLP export requests delivered.", r(&self.export_requests));
        counter(
            &mut out,
            "tracex_export_retries_total",
            "OTLP export attempts that failed and were retried.",
            r(&self.export_retries),
        );
        #[allow(clippy::cast_precision_loss)]
        let lag = r(&self.export_lag_ms) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "# HELP tracex_export_lag_seconds Since the first stored batch the OTLP export has not delivered yet was received (0: caught up).\n# TYPE tracex_export_lag_seconds gauge\ntracex_export_lag_seconds {lag}"
        );
        let _ = writeln!(
            out,
            "# HELP tracex_live_viewers Live-tail streams open.\n# TYPE tracex_live_viewers gauge\ntracex_live_viewers {}",
            self.live_viewers.load(Ordering::Relaxed)
        );
        self.decrypt_seconds.render("tracex_decrypt_seconds", "Time to open and decode one batch.", &mut out);
        self.commit_seconds.render("tracex_commit_seconds", "Time of one group commit.", &mut out);
        self.audit_checkpoint_seconds.render(
            "tracex_audit_checkpoint_seconds",
            "Time to compute the root of and sign one audit checkpoint.",
            &mut out,
        );
        out
    }
}

/// A label value as the text format writes it: backslash, double quote and newline escaped (the
/// project, SDK and service names come from API keys and SDKs, not from this code).
fn label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.reject("decrypt_failed");
        m.decrypt_seconds.observe(Duration::from_micros(300));
        m.decrypt_seconds.observe(Duration::from_secs(3));
        let text = m.render();
        assert!(text.contains("tracex_batches_rejected_total{reason=\"decrypt_failed\"} 1"));
        assert!(text.contains("tracex_decrypt_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("tracex_decrypt_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("tracex_decrypt_seconds_count 2"));
        assert_eq!(m.rejected("decrypt_failed"), 1);
        assert!(text.contains("# TYPE tracex_batches_missing gauge\n#"), "no gap series before a gap");
        let group = GapGroup { project: "a\"b".into(), sdk_name: "tracex-node".into(), service: "x\\y\nz".into() };
        *m.batches_missing.lock().unwrap() = vec![(group, 3)];
        assert!(
            m.render()
                .contains("tracex_batches_missing{project=\"a\\\"b\",sdk=\"tracex-node\",service=\"x\\\\y\\nz\"} 3\n"),
            "{}",
            m.render()
        );
    }
}
