//! The batcher: drains the buffer into batches by size or age, then redacts, encodes (OTLP
//! protobuf) and seals each batch. The same code runs on the native worker thread and in the pump
//! that a thread-less host (wasm32) calls.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::buffer::SpanBuffer;
use crate::config::{BatchConfig, SpanLimits};
use crate::encode::encode_spans_of;
use crate::error::{Error, Result};
use crate::model::{InstrumentationScope, KeyValue, Resource, SpanData, Value};
use crate::redact::Redactor;
use crate::seal::{CollectorKey, DataKey, SealedBatch, Sealer, SealerConfig};
use crate::stats::Stats;

/// Where the pipeline's sealer comes from: the collector key (possibly not known yet) and the
/// sealer's settings.
pub(crate) struct SealerSource {
    pub(crate) key: Arc<OnceLock<CollectorKey>>,
    pub(crate) config: SealerConfig,
}

/// Owns everything between the buffer and a sealed batch. Used by one thread at a time.
pub(crate) struct Pipeline {
    resource: Resource,
    scope: InstrumentationScope,
    redactor: Redactor,
    /// `None` until the collector key is known (fetched in the background when only its fingerprint
    /// was configured): until then spans wait in the bounded buffer, in memory only.
    sealer: Option<Sealer>,
    source: SealerSource,
    limits: SpanLimits,
    batch: BatchConfig,
    /// Drained spans still in their boxes, returned to the buffer's pool once sealed.
    #[allow(clippy::vec_box, reason = "each box goes back to the buffer's pool, to be filled by the hot path")]
    pending: Vec<Box<SpanData>>,
    scratch: Vec<u8>,
    last_export: u64,
}

impl Pipeline {
    pub(crate) fn new(
        resource: Resource,
        scope: InstrumentationScope,
        redactor: Redactor,
        source: SealerSource,
        limits: SpanLimits,
        batch: BatchConfig,
        now: u64,
    ) -> Self {
        Self {
            resource,
            scope,
            redactor,
            sealer: None,
            source,
            limits,
            batch,
            pending: Vec::with_capacity(batch.max_batch_size),
            scratch: Vec::new(),
            last_export: now,
        }
    }

    /// Drains the buffer and seals every full batch; when `force`, or when the scheduled delay has
    /// passed since the last export, seals the partial remainder too.
    /// Nothing is drained while the collector key is unknown.
    ///
    /// Each sealed batch goes to `emit` as soon as it is sealed, so at most one sealed batch is held
    /// here: collecting into a list let a burst that kept the buffer full pile up 144 sealed batches
    /// (7,200 spans, three times the buffer's bound) while the batcher was spooling the first ones
    /// (tests/sdk_faults.rs in the collector). One call drains at most one buffer's capacity, so a
    /// producer that refills as fast as it is drained cannot keep the call going.
    pub(crate) fn collect(
        &mut self,
        buffer: &SpanBuffer,
        stats: &Stats,
        now: u64,
        force: bool,
        emit: &mut dyn FnMut(SealedBatch),
    ) {
        let delay = u64::try_from(self.batch.scheduled_delay.as_nanos()).unwrap_or(u64::MAX);
        let due = force || now.saturating_sub(self.last_export) >= delay;
        if self.nothing_to_seal(buffer) {
            if due {
                self.last_export = now;
            }
            return;
        }
        if !self.ensure_sealer() {
            return;
        }
        let mut budget = buffer.capacity();
        loop {
            let mut drained = 0u64;
            while self.pending.len() < self.batch.max_batch_size && budget > 0 {
                let Some(span) = buffer.pop() else { break };
                self.pending.push(span);
                drained += 1;
                budget -= 1;
            }
            Stats::add(&stats.spans_drained, drained);
            let full = self.pending.len() >= self.batch.max_batch_size;
            if self.pending.is_empty() || !(full || due) {
                break;
            }
            let mut spans = std::mem::take(&mut self.pending);
            self.seal_spans(&mut spans, stats, now, emit);
            for span in spans.drain(..) {
                buffer.recycle(span);
            }
            self.pending = spans;
        }
        if due {
            self.last_export = now;
        }
    }

    /// Creates the sealer once the key is known (a new envelope instance id). False while it is not,
    /// or when the OS random source fails (tried again on the next call).
    fn ensure_sealer(&mut self) -> bool {
        if self.sealer.is_none() {
            if let Some(key) = self.source.key.get() {
                self.sealer = Sealer::new(key.clone(), self.source.config.clone()).ok();
            }
        }
        self.sealer.is_some()
    }

    /// Nothing buffered or pending: no sealer is needed yet (creating one draws its random instance
    /// id, which a WASM module warming up at an edge worker's startup must not do: `warm.rs`).
    fn nothing_to_seal(&self, buffer: &SpanBuffer) -> bool {
        self.pending.is_empty() && buffer.len() == 0
    }

    /// A fresh data key when the next batch needs one and the host wraps data keys itself
    /// ([`Sealer::data_key_due`]); `None` while the current key is good, the collector key unknown,
    /// or nothing waits to be sealed.
    pub(crate) fn data_key_due(&mut self, buffer: &SpanBuffer, now: u64) -> Result<Option<DataKey>> {
        if self.nothing_to_seal(buffer) || !self.ensure_sealer() {
            return Ok(None);
        }
        self.sealer.as_ref().map_or(Ok(None), |s| s.data_key_due(now))
    }

    /// Installs a data key the host wrapped ([`Sealer::install_wrapped_key`]).
    pub(crate) fn install_wrapped_key(&mut self, now: u64, data_key: &DataKey, wrapped: Vec<u8>) -> Result<()> {
        match self.sealer.as_mut() {
            Some(sealer) => sealer.install_wrapped_key(now, data_key, wrapped),
            None => Err(Error::Seal("no collector key to seal to yet".into())),
        }
    }

    /// Drops every buffered and pending span, counted as failed: for a shutdown that never learnt
    /// the collector key (the spans can never be sealed, and plaintext never goes to disk).
    pub(crate) fn discard(&mut self, buffer: &SpanBuffer, stats: &Stats) -> u64 {
        let mut n = self.pending.len() as u64;
        self.pending.clear();
        while buffer.pop().is_some() {
            n += 1;
        }
        Stats::add(&stats.spans_drained, n);
        Stats::add(&stats.spans_failed, n);
        n
    }

    fn seal_spans(&mut self, spans: &mut [Box<SpanData>], stats: &Stats, now: u64, out: &mut dyn FnMut(SealedBatch)) {
        let mut redacted = 0u64;
        for span in spans.iter_mut() {
            redacted += u64::from(self.redactor.redact_span(span));
            prepare(span, &self.limits);
        }
        Stats::add(&stats.spans_redacted_values, redacted);
        self.seal_chunk(spans, stats, now, out);
    }

    /// Encodes and seals `spans`, splitting in halves while the plaintext is over the byte limit.
    fn seal_chunk(&mut self, spans: &[Box<SpanData>], stats: &Stats, now: u64, out: &mut dyn FnMut(SealedBatch)) {
        self.scratch.clear();
        encode_spans_of(&self.resource, &self.scope, spans, &mut self.scratch);
        if self.scratch.len() > self.batch.max_batch_bytes && spans.len() > 1 {
            let (a, b) = spans.split_at(spans.len() / 2);
            self.seal_chunk(a, stats, now, out);
            self.seal_chunk(b, stats, now, out);
            return;
        }
        let count = u32::try_from(spans.len()).unwrap_or(u32::MAX);
        let Some(sealer) = self.sealer.as_mut() else { return };
        let rotations_before = sealer.rotations();
        match sealer.seal(now, &self.scratch) {
            Ok(mut batch) => {
                batch.span_count = count;
                Stats::add(&stats.batches_sealed, 1);
                Stats::add(&stats.spans_sealed, u64::from(count));
                out(batch);
            }
            Err(_) => {
                // Only RSA or the OS RNG can fail here; nothing to retry with, so the batch is lost
                // and counted.
                Stats::add(&stats.batches_failed, 1);
                Stats::add(&stats.spans_failed, u64::from(count));
            }
        }
        Stats::add(&stats.key_rotations, sealer.rotations() - rotations_before);
    }
}

/// Worker-side clean-up that keeps the hot path an append: later attribute values replace earlier
/// ones for the same key (in the first key's position), and long strings are truncated.
fn prepare(span: &mut SpanData, limits: &SpanLimits) {
    dedup_last_wins(&mut span.attributes);
    let max = limits.max_attribute_value_len;
    for kv in &mut span.attributes {
        truncate_value(&mut kv.value, max);
    }
    for e in &mut span.events {
        for kv in &mut e.attributes {
            truncate_value(&mut kv.value, max);
        }
    }
}

fn truncate_value(v: &mut Value, max: usize) {
    match v {
        Value::String(s) if s.len() > max => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.to_mut().truncate(end);
        }
        Value::Array(items) => items.iter_mut().for_each(|i| truncate_value(i, max)),
        _ => {}
    }
}

pub(crate) fn dedup_last_wins(attrs: &mut Vec<KeyValue>) {
    let n = attrs.len();
    if n < 2 {
        return;
    }
    let has_dup = if n <= 16 {
        (1..n).any(|i| attrs[..i].iter().any(|kv| kv.key == attrs[i].key))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n);
        !attrs.iter().all(|kv| seen.insert(kv.key.clone()))
    };
    if !has_dup {
        return;
    }
    let mut index: HashMap<String, usize> = HashMap::with_capacity(n);
    let mut out: Vec<KeyValue> = Vec::with_capacity(n);
    for kv in attrs.drain(..) {
        match index.get(kv.key.as_ref()) {
            Some(&i) => out[i].value = kv.value,
            None => {
                index.insert(kv.key.to_string(), out.len());
                out.push(kv);
            }
        }
    }
    *attrs = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_win_in_first_position() {
        let mut a = vec![KeyValue::new("a", 1i64), KeyValue::new("b", 2i64), KeyValue::new("a", 3i64)];
        dedup_last_wins(&mut a);
        assert_eq!(a, vec![KeyValue::new("a", 3i64), KeyValue::new("b", 2i64)]);
        let mut many: Vec<_> = (0..40).map(|i| KeyValue::new(format!("k{}", i % 20), i64::from(i))).collect();
        dedup_last_wins(&mut many);
        assert_eq!(many.len(), 20);
        assert_eq!(many[0], KeyValue::new("k0", 20i64));
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary() {
        let mut v = Value::from("aé".repeat(10));
        truncate_value(&mut v, 4);
        assert_eq!(v, Value::from("aéa"));
    }
}
