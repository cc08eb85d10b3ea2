//! The span rows a leaf claims, read back from the store with their resources: what the OTLP
//! export forwards and what a collector shows live of batches another collector committed. The
//! leaf is the unit both follow, because leaves are the stored batches in commit order.

use std::collections::HashMap;

use tracex_core::{InstrumentationScope, Resource, ResourceSpans, ScopeSpans, SpanData, TraceRequest};

use super::leaf::{Claims, Leaf};
use super::{LeafRecord, RowLookup};
use crate::store::common::{decode_resource_body, decode_span_body};
use crate::store::{Store, StoreError, StoreResult};

/// One leaf's spans, grouped by the resource they came with.
#[derive(Debug)]
pub struct LeafSpans {
    /// The leaf.
    pub leaf: Leaf,
    /// Per resource row: the resource, its scope and the spans with their stored body's size.
    pub groups: Vec<ResourceGroup>,
    /// Spans claimed and no longer stored (retention got there first).
    pub missing: u64,
}

/// Spans of one resource row.
#[derive(Debug)]
pub struct ResourceGroup {
    /// The resource row's id.
    pub resource_id: i64,
    /// The resource.
    pub resource: Resource,
    /// The instrumentation scope.
    pub scope: InstrumentationScope,
    /// The spans, with the size of each stored body (a request's size before encoding).
    pub spans: Vec<(SpanData, usize)>,
}

impl LeafSpans {
    /// The spans as one OTLP request.
    pub fn request(&self) -> TraceRequest {
        TraceRequest {
            resource_spans: self
                .groups
                .iter()
                .map(|g| ResourceSpans {
                    resource: g.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: g.scope.clone(),
                        spans: g.spans.iter().map(|(s, _)| s.clone()).collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

/// Decoded resource rows, by id: resources are shared by content (deduplicated by hash), so one
/// decode serves every leaf that names them.
pub type ResourceCache = HashMap<i64, (Resource, InstrumentationScope)>;

/// The leaf's header only (no row is read).
pub fn leaf_of(record: &LeafRecord) -> StoreResult<Leaf> {
    Leaf::decode(&record.leaf).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads back the rows `record` claims.
pub fn read(store: &dyn Store, record: &LeafRecord, resources: &mut ResourceCache) -> StoreResult<LeafSpans> {
    let leaf = leaf_of(record)?;
    let claims = Claims::decode(&record.claims, leaf.claims_format).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let keys = claims.keys();
    let mut out = LeafSpans { leaf, groups: Vec::new(), missing: 0 };
    if keys.is_empty() {
        return Ok(out);
    }
    for row in store.audit_rows(&out.leaf.project, &keys)? {
        let RowLookup::Found(row) = row else {
            out.missing += 1;
            continue;
        };
        let span = (decode_span_body(&row.body)?, row.body.len());
        if let Some(g) = out.groups.iter_mut().find(|g| g.resource_id == row.resource_id) {
            g.spans.push(span);
            continue;
        }
        let (resource, scope) = match resources.get(&row.resource_id) {
            Some(r) => r.clone(),
            None => {
                let (_, body) = store
                    .audit_resource(row.resource_id)?
                    .ok_or_else(|| StoreError::Corrupt(format!("resource {} is missing", row.resource_id)))?;
                let decoded = decode_resource_body(&body)?;
                resources.insert(row.resource_id, decoded.clone());
                decoded
            }
        };
        out.groups.push(ResourceGroup { resource_id: row.resource_id, resource, scope, spans: vec![span] });
    }
    Ok(out)
}
