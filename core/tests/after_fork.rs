//! `Tracer::after_fork_in_child`: what a forked child does to get a working pipeline of its own.
//! A real `fork()` is exercised end to end by the Python binding's tests (tests/test_fork.py); here
//! the same call runs in-process, which checks everything except the dead threads themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use tracex_core::transport::MemoryTransport;
use tracex_core::{Error, Tracer};

fn tracer_with(transport: &MemoryTransport) -> Tracer {
    let t = transport.clone();
    Tracer::builder()
        .with_service_name("fork-test")
        .with_collector_public_key_pem(common::public_pem())
        .with_transport_factory(move || Ok(Box::new(t.clone())))
        .build()
        .unwrap()
}

fn names(transport: &MemoryTransport) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    for body in transport.received() {
        let (header, req) = common::open(&body);
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                out.extend(ss.spans.iter().map(|s| (header.instance_id.to_vec(), s.name.to_string())));
            }
        }
    }
    out
}

#[test]
fn child_gets_a_fresh_pipeline_and_the_parent_keeps_its_own() {
    let transport = MemoryTransport::default();
    let parent = tracer_with(&transport);
    drop(parent.span("before-fork")); // buffered in the parent when the "fork" happens

    let child = parent.after_fork_in_child().unwrap();
    assert!(child.has_worker());
    assert_eq!(child.collector_key_id(), parent.collector_key_id());
    assert_eq!(child.stats().spans_recorded, 0, "the child starts with an empty buffer");
    drop(child.span("in-child"));
    let report = child.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_delivered, 1, "{report:?}");

    drop(parent.span("parent-after-fork"));
    let report = parent.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_delivered, 2, "{report:?}");

    let got = names(&transport);
    let child_batch: Vec<_> = got.iter().filter(|(_, n)| n == "in-child").collect();
    assert_eq!(child_batch.len(), 1, "{got:?}");
    let parent_batches: Vec<_> = got.iter().filter(|(_, n)| n != "in-child").collect();
    assert_eq!(parent_batches.len(), 2, "{got:?}");
    assert!(
        parent_batches.iter().all(|(inst, _)| inst != &child_batch[0].0),
        "the child seals under its own envelope instance id"
    );
    assert_eq!(got.iter().filter(|(_, n)| n == "before-fork").count(), 1, "sent once, by the parent");
}

#[test]
fn child_of_a_shut_down_tracer_is_shut_down_too() {
    let transport = MemoryTransport::default();
    let parent = tracer_with(&transport);
    parent.shutdown(Duration::from_secs(5)).unwrap();
    let child = parent.after_fork_in_child().unwrap();
    assert!(matches!(child.flush(Duration::from_secs(1)), Err(Error::Shutdown)));
}

#[test]
fn a_transport_instance_cannot_be_reopened() {
    let tracer = Tracer::builder()
        .with_service_name("fork-test")
        .with_collector_public_key_pem(common::public_pem())
        .with_transport(Box::new(MemoryTransport::default()))
        .build()
        .unwrap();
    let err = tracer.after_fork_in_child().unwrap_err();
    assert_eq!(err.code(), "TRACEX_CONFIG");
    assert!(err.to_string().contains("with_transport_factory"), "{err}");
}
