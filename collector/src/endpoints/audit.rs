//! The audit log's API (see `docs/audit.md`): the audit key, signed checkpoints, inclusion proofs
//! for a project's batches and traces, consistency proofs between tree sizes. Everything it
//! answers is checked by the core's verifiers (`tracex_core::audit`), in any runtime.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value as J, json};

use super::error::ApiError;
use super::query::{project_of, store_error};
use super::stats::{blocking, pairs};
use crate::AppState;
use crate::audit::{StoredCheckpoint, tree};
use crate::store::{Store, StoreError};

/// Most checkpoints one `GET /api/v1/audit/checkpoints` lists.
pub const MAX_CHECKPOINTS: usize = 1000;
/// Most leaves one trace's inclusion answer proves (a trace's spans come in few batches; a
/// trace of 50,000 spans sent one span a batch is answered in part, and says so).
pub const MAX_TRACE_LEAVES: usize = 256;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

fn number(name: &str, v: &str) -> Result<u64, ApiError> {
    v.parse().map_err(|_| bad(format!("{name} must be a non-negative integer, got {v:?}")))
}

fn hex_id<const N: usize>(name: &str, v: &str) -> Result<[u8; N], ApiError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(v, &mut out).map_err(|_| bad(format!("{name} must be {} hex digits", 2 * N)))?;
    Ok(out)
}

fn b64s(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

fn checkpoint_json(c: &StoredCheckpoint) -> J {
    json!({
        "size": c.size,
        "root_hash": B64.encode(c.root),
        "signed_at_unix_nano": c.signed_at_unix_nano.to_string(),
        "note": c.note,
    })
}

/// `GET /v1/audit-key`: the audit log's public verifier key (C2SP signed-note format), which is
/// also the log's origin name. Public, like the sealing key: SDKs, witnesses and auditors pin it.
pub async fn audit_key(State(app): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "verifier_key": app.audit.verifier().to_string(),
        "origin": app.audit.name(),
        "algorithm": "Ed25519",
    }))
    .into_response()
}

/// `GET /api/v1/audit/checkpoint`: the latest signed checkpoint, as the signed note itself
/// (`text/plain`), which is what witnesses and `tlog` tools read.
pub async fn checkpoint(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    project_of(&app, &headers).await?;
    let store = app.store.clone();
    let latest = blocking(move || store.latest_checkpoint().map_err(store_error)).await?;
    let c = latest.ok_or_else(|| not_found("no_checkpoint", "the audit log has no checkpoint yet"))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], c.note).into_response())
}

/// `GET /api/v1/audit/checkpoints?from_size=&limit=`: checkpoints kept, by size. `?latest=true`
/// instead: the latest one with when it was signed, or an empty list before the first — what
/// `/api/v1/audit/checkpoint` answers 404 to, which a browser reports as a failed load.
pub async fn checkpoints(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    project_of(&app, &headers).await?;
    let (mut from, mut limit, mut latest) = (0, 100, false);
    let given = pairs(raw.as_deref(), &["from_size", "limit", "latest"], false)?;
    let paged = given.iter().any(|(k, _)| k != "latest");
    for (k, v) in given {
        match k.as_str() {
            "latest" => {
                latest = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("latest must be true or false, got {v:?}"))),
                }
            }
            "from_size" => from = number(&k, &v)?,
            _ => limit = usize::try_from(number(&k, &v)?).unwrap_or(usize::MAX).clamp(1, MAX_CHECKPOINTS),
        }
    }
    if latest && paged {
        return Err(bad("latest=true lists one checkpoint: without from_size or limit"));
    }
    let store = app.store.clone();
    let list = blocking(move || {
        let list = if latest { store.latest_checkpoint().map(Vec::from_iter) } else { store.checkpoints(from, limit) };
        list.map_err(store_error)
    })
    .await?;
    Ok(axum::Json(json!({ "checkpoints": list.iter().map(checkpoint_json).collect::<Vec<_>>() })).into_response())
}

/// The tree size a proof is for: `size` if given (at most the log's), else the latest checkpoint's;
/// with the checkpoint signed at that size, if any.
fn proof_size(store: &dyn Store, size: Option<u64>) -> Result<(u64, Option<StoredCheckpoint>), ApiError> {
    let leaves = store.audit_size().map_err(store_error)?;
    match size {
        Some(s) if s > leaves => Err(bad(format!("size {s} is larger than the log ({leaves} leaves)"))),
        Some(s) => {
            let c = store.checkpoints(s, 1).map_err(store_error)?.into_iter().find(|c| c.size == s);
            Ok((s, c))
        }
        None => match store.latest_checkpoint().map_err(store_error)? {
            Some(c) => Ok((c.size, Some(c))),
            None => Ok((0, None)),
        },
    }
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    store_error(StoreError::Corrupt(e.to_string()))
}

/// `GET /api/v1/audit/inclusion?batch_id=|trace_id=[&size=]`: inclusion proofs of the leaves of
/// one of the project's batches, or of every batch that stored spans of one of its traces, in the
/// tree of `size` leaves (default: the latest checkpoint's). Leaves not in that tree yet are
/// listed as `pending`: the next checkpoint covers them.
pub async fn inclusion(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let (mut batch, mut trace, mut size) = (None, None, None);
    for (k, v) in pairs(raw.as_deref(), &["batch_id", "trace_id", "size"], false)? {
        match k.as_str() {
            "batch_id" => batch = Some(hex_id::<16>(&k, &v)?),
            "trace_id" => trace = Some(hex_id::<16>(&k, &v)?),
            _ => size = Some(number(&k, &v)?),
        }
    }
    if batch.is_some() == trace.is_some() {
        return Err(bad("give exactly one of batch_id and trace_id"));
    }
    let store = app.store.clone();
    let body = blocking(move || {
        let mut leaves = match (batch, trace) {
            (Some(b), _) => store.audit_leaf_of_batch(&project, &b).map_err(store_error)?.into_iter().collect(),
            (_, Some(t)) => store.audit_leaves_of_trace(&project, tracex_core::TraceId(t)).map_err(store_error)?,
            _ => Vec::new(),
        };
        if leaves.is_empty() {
            return Err(not_found("not_found", "no leaf of this project's audit log holds it"));
        }
        let truncated = leaves.len() > MAX_TRACE_LEAVES;
        leaves.truncate(MAX_TRACE_LEAVES);
        let (size, checkpoint) = proof_size(&*store, size)?;
        let (proven, pending): (Vec<u64>, Vec<u64>) = leaves.into_iter().partition(|i| *i < size);
        let mut ids: Vec<tree::NodeId> = proven.iter().flat_map(|i| tree::inclusion_nodes(*i, size)).collect();
        ids.sort_unstable();
        ids.dedup();
        let nodes = if ids.is_empty() { tree::Nodes::new() } else { store.audit_nodes(&ids).map_err(store_error)? };
        let mut proofs = Vec::with_capacity(proven.len());
        for i in proven {
            let record = store.audit_leaves(i, 1).map_err(store_error)?.pop().filter(|r| r.index == i);
            let record = record.ok_or_else(|| corrupt(format!("leaf {i} is missing")))?;
            let hashes = tree::inclusion(i, size, &nodes).map_err(corrupt)?;
            proofs.push(json!({
                "leaf_index": i,
                "leaf": B64.encode(&record.leaf),
                "leaf_hash": B64.encode(record.hash),
                "hashes": b64s(&hashes),
            }));
        }
        Ok(json!({
            "tree_size": size,
            "checkpoint": checkpoint.as_ref().map(|c| c.note.clone()),
            "proofs": proofs,
            "pending": pending,
            "truncated": truncated,
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/audit/consistency?from=[&to=]`: the consistency proof from the tree of `from`
/// leaves to the tree of `to` (default: the latest checkpoint's size).
pub async fn consistency(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    project_of(&app, &headers).await?;
    let (mut from, mut to) = (None, None);
    for (k, v) in pairs(raw.as_deref(), &["from", "to"], false)? {
        let n = number(&k, &v)?;
        if k == "from" { from = Some(n) } else { to = Some(n) }
    }
    let from = from.ok_or_else(|| bad("from is required"))?;
    let store = app.store.clone();
    let body = blocking(move || {
        let (to, checkpoint) = proof_size(&*store, to)?;
        if from > to {
            return Err(bad(format!("from ({from}) is larger than to ({to})")));
        }
        let nodes = store.audit_nodes(&tree::consistency_nodes(from, to)).map_err(store_error)?;
        let hashes = tree::consistency(from, to, &nodes).map_err(corrupt)?;
        Ok(json!({
            "from": from,
            "to": to,
            "checkpoint": checkpoint.as_ref().map(|c| c.note.clone()),
            "hashes": b64s(&hashes),
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// Most batches one gap report reads (the answer says `truncated` past it, with the instances
/// read in full).
pub const MAX_GAP_SCAN_BATCHES: usize = 200_000;

/// `GET /api/v1/audit/gaps[?all=true]`: per SDK instance of the project, the sequence numbers
/// never stored (batches lost between SDK and collector, or still spooled) and numbers stored
/// under several batch ids (an instance id reused); instances without either only with `all`.
pub async fn gaps(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let mut all = false;
    for (_, v) in pairs(raw.as_deref(), &["all"], false)? {
        all = match v.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!("all must be true or false, got {v:?}"))),
        };
    }
    let store = app.store.clone();
    let mut rows =
        blocking(move || store.batch_sequences(&project, None, MAX_GAP_SCAN_BATCHES + 1).map_err(store_error)).await?;
    let truncated = rows.len() > MAX_GAP_SCAN_BATCHES;
    if truncated {
        // The last instance may be cut short: leave it out rather than report false gaps.
        let last = rows[rows.len() - 1].instance_id;
        rows.retain(|r| r.instance_id != last);
    }
    let report = crate::audit::gaps::report(&rows);
    let instances: Vec<J> = report
        .iter()
        .filter(|i| all || !i.missing.is_empty() || !i.reused.is_empty())
        .map(|i| {
            json!({
                "instance_id": hex::encode(i.instance_id),
                "sdk_name": i.sdk_name,
                "sdk_version": i.sdk_version,
                "service": i.service,
                "batches": i.batches,
                "last_sequence": i.last_sequence,
                "first_received_unix_nano": i.first_received_unix_nano.to_string(),
                "last_received_unix_nano": i.last_received_unix_nano.to_string(),
                "missing_total": i.missing_total(),
                "missing": i.missing.iter().map(|m| json!({
                    "first_sequence": m.first,
                    "last_sequence": m.last,
                    "after_created_unix_nano": m.after_created_at_unix_nano.map(|t| t.to_string()),
                    "before_created_unix_nano": m.before_created_at_unix_nano.to_string(),
                })).collect::<Vec<_>>(),
                "reused": i.reused.iter().map(|r| json!({
                    "sequence": r.sequence,
                    "batch_ids": r.batch_ids.iter().map(hex::encode).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "instances": instances,
        "instances_checked": report.len(),
        "batches_checked": rows.len(),
        "truncated": truncated,
    }))
    .into_response())
}
