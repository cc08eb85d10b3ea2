//! Signs a checkpoint of the audit log every `audit_checkpoint_interval_ms` while leaves arrive
//! (receipts promise inclusion in the next one). Several collectors on one PostgreSQL database
//! sign the same sizes with the same key; the first checkpoint stored at a size is kept.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::checkpoints;
use crate::audit::signer::AuditSigner;
use crate::metrics::Metrics;
use crate::store::Store;

/// Runs until aborted.
pub async fn run(store: Arc<dyn Store>, signer: Arc<AuditSigner>, metrics: Arc<Metrics>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (store, signer, m) = (store.clone(), signer.clone(), metrics.clone());
        let signed = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let out = checkpoints::sign_if_grown(&*store, &signer, crate::now_unix_nano());
            if let Ok(Some(_)) = out {
                m.audit_checkpoint_seconds.observe(started.elapsed());
            }
            out
        })
        .await;
        match signed {
            Ok(Ok(Some(c))) => {
                metrics.audit_checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(size = c.size, "audit checkpoint signed");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "signing an audit checkpoint failed; retrying next interval"),
            Err(e) => tracing::error!(error = %e, "the checkpoint task panicked"),
        }
    }
}
