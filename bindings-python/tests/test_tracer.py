"""Spans emitted through the installed wheel arrive at the real collector and read back intact."""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import threading
import time
import urllib.request

import pytest

import tracex
from conftest import VECTORS, Collector, attrs


def test_span_round_trips_through_the_collector(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(
        service_version="1.2.3",
        environment="test",
        operator_id="settler-eu-1",
        resource_attributes={"cloud.region": "eu-west-1", "host.cores": 2},
    )
    with tracer.span("settle", attributes={"x402.network": "base-sepolia"}, kind="server") as span:
        span.set_attribute("x402.amount", "10000")
        span.set_attribute("x402.attempt", 2)
        span.set_attribute("x402.fee_ratio", 0.25)
        span.set_attribute("x402.final", True)
        span.set_attribute("x402.blob", b"\x00\x01")
        span.set_attribute("x402.tags", ["a", "b"])
        span.set_attributes({"x402.scheme": "exact", "x402.meta": {"k": 1}})
        span.add_event("retry", {"x402.attempt": 1})
        span.set_status("ok")
        trace_id = span.trace_id
    report = tracer.flush(timeout=10)
    assert report.spans_delivered == 1 and report.complete, report

    [got] = collector.wait_spans(trace_id, 1)
    assert got["name"] == "settle"
    assert got["kind"] == "server"
    assert got["status"]["code"] == "ok"
    assert got["service_name"] == "pytest-py"
    assert attrs(got) == {
        "x402.network": "base-sepolia",
        "x402.amount": "10000",
        "x402.attempt": 2,
        "x402.fee_ratio": 0.25,
        "x402.final": True,
        "x402.blob": b"\x00\x01",
        "x402.tags": ["a", "b"],
        "x402.scheme": "exact",
        "x402.meta": {"k": 1},
    }
    assert [e["name"] for e in got["events"]] == ["retry"]
    resource = attrs(got["resource"])
    assert resource["telemetry.sdk.name"] == "tracex-python"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["service.version"] == "1.2.3"
    assert resource["deployment.environment.name"] == "test"
    assert resource["x402.operator.id"] == "settler-eu-1"
    assert resource["cloud.region"] == "eu-west-1" and resource["host.cores"] == 2


def test_nesting_exceptions_and_manual_spans(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()
    with pytest.raises(KeyError), tracer.span("outer") as outer:
        assert tracex.current_span() is outer
        manual = tracer.start_span("manual")  # not made current
        assert tracex.current_span() is outer
        manual.end()
        manual.end()  # a second end does nothing
        assert not manual.is_recording
        with tracer.span("inner") as inner:
            assert tracex.current_span() is inner
            raise KeyError("nonce too low")
    assert tracex.current_span() is None
    tracer.flush(timeout=10)
    spans = {s["name"]: s for s in collector.wait_spans(outer.trace_id, 3)}
    assert set(spans) == {"outer", "manual", "inner"}
    assert spans["inner"]["parent_span_id"] == outer.span_id
    assert spans["manual"]["parent_span_id"] == outer.span_id
    assert spans["outer"]["parent_span_id"] is None
    for name in ("inner", "outer"):  # the exception passes through both
        s = spans[name]
        assert s["status"]["code"] == "error"
        assert s["status"]["message"] == "'nonce too low'"
        [ev] = [e for e in s["events"] if e["name"] == "exception"]
        ev_attrs = attrs(ev)
        assert ev_attrs["exception.type"] == "KeyError"
        assert "raise KeyError" in ev_attrs["exception.stacktrace"]


def test_asyncio_tasks_nest_under_the_span_that_created_them(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()

    async def leg(i: int) -> str:
        async with tracer.span(f"leg-{i}") as s:
            await asyncio.sleep(0.01 * (3 - i))  # interleave the tasks
            with tracer.span(f"leg-{i}-rpc") as rpc:
                assert rpc.context.trace_id == s.trace_id
            return s.span_id

    async def main() -> tuple[str, str, list[str]]:
        async with tracer.span("batch") as root:
            ids = await asyncio.gather(*(leg(i) for i in range(3)))
        return root.trace_id, root.span_id, list(ids)

    trace_id, root_id, leg_ids = asyncio.run(main())
    tracer.flush(timeout=10)
    spans = {s["name"]: s for s in collector.wait_spans(trace_id, 7)}
    assert len(spans) == 7
    for i in range(3):
        assert spans[f"leg-{i}"]["parent_span_id"] == root_id
        assert spans[f"leg-{i}"]["span_id"] == leg_ids[i]
        assert spans[f"leg-{i}-rpc"]["parent_span_id"] == leg_ids[i]


def test_a_span_exited_in_another_context_still_ends(collector: Collector, make_tracer) -> None:
    # Entered in one context, exited in another (a callback run elsewhere, say): the other context's
    # current span cannot be reset, so it is left alone, and the span still ends and is delivered.
    tracer = make_tracer()
    span = tracer.span("moved")
    elsewhere = contextvars.copy_context()
    assert elsewhere.run(span.__enter__) is span
    assert elsewhere.run(tracex.current_span) is span
    assert tracex.current_span() is None, "this context never had it"
    span.__exit__(None, None, None)
    assert tracex.current_span() is None
    assert elsewhere.run(tracex.current_span) is span, "that context's value is left alone"
    assert not span.is_recording
    with tracer.span("after") as after:
        assert after.context.trace_id != span.trace_id, "a new root here, not a child of the moved span"
    tracer.flush(timeout=10)
    [moved] = collector.wait_spans(span.trace_id, 1)
    assert moved["name"] == "moved" and moved["parent_span_id"] is None


def test_decorator_sync_and_async(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()

    @tracer.trace
    def verify(x: int) -> int:
        return x * 2

    @tracer.trace("confirm-tx")
    async def confirm() -> str:
        return tracex.current_span().trace_id

    @tracer.trace(attributes={"x402.phase": "settle"})
    def fails() -> None:
        raise RuntimeError("rpc down")

    with tracer.span("job") as job:
        assert verify(21) == 42
        assert asyncio.run(confirm()) == job.trace_id  # asyncio.run copies the current context
        with pytest.raises(RuntimeError):
            fails()
    tracer.flush(timeout=10)
    spans = {s["name"]: s for s in collector.wait_spans(job.trace_id, 4)}
    assert set(spans) == {
        "job",
        "test_decorator_sync_and_async.<locals>.verify",
        "confirm-tx",
        "test_decorator_sync_and_async.<locals>.fails",
    }
    failed = spans["test_decorator_sync_and_async.<locals>.fails"]
    assert failed["status"]["code"] == "error" and attrs(failed)["x402.phase"] == "settle"
    assert all(s["parent_span_id"] == job.span_id for n, s in spans.items() if n != "job")


def test_threads_have_their_own_current_span(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()
    results: dict[int, tuple[str, str, str]] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        with tracer.span(f"thread-{i}") as outer:
            barrier.wait()  # all four outer spans are open at once
            with tracer.span(f"thread-{i}-inner") as inner:
                results[i] = (outer.trace_id, outer.span_id, inner.span_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracer.flush(timeout=10)
    assert len({r[0] for r in results.values()}) == 4, "each thread started its own trace"
    for i, (trace_id, outer_id, _inner_id) in results.items():
        spans = {s["name"]: s for s in collector.wait_spans(trace_id, 2)}
        assert set(spans) == {f"thread-{i}", f"thread-{i}-inner"}
        assert spans[f"thread-{i}-inner"]["parent_span_id"] == outer_id
        assert spans[f"thread-{i}"]["parent_span_id"] is None


def test_threads_share_interned_keys_and_values(collector: Collector, make_tracer) -> None:
    # Keys, names and long-lived values are interned once per process, the GIL serialising the
    # table: threads switching as often as the interpreter allows must each get their own values.
    tracer = make_tracer()
    ids: dict[int, str] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        own = f"thread-{i}"  # a str object per thread: interned by each, never confused
        barrier.wait()
        with tracer.span("interned") as root:
            ids[i] = root.trace_id
            for n in range(200):
                with tracer.span("interned") as span:
                    span.set_attribute("x402.network", "base-sepolia")
                    span.set_attribute("x402.owner", own)
                    span.set_attribute("x402.step", n)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    tracer.flush(timeout=10)
    for i, trace_id in ids.items():
        spans = [s for s in collector.wait_spans(trace_id, 201) if s["parent_span_id"] is not None]
        assert len(spans) == 200
        assert {attrs(s)["x402.owner"] for s in spans} == {f"thread-{i}"}
        assert {attrs(s)["x402.network"] for s in spans} == {"base-sepolia"}
        assert sorted(attrs(s)["x402.step"] for s in spans) == list(range(200))


def test_traceparent_inject_and_extract(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()
    incoming = {"TraceParent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "congo=t61"}
    parent = tracex.extract(incoming)
    assert parent is not None and parent.is_remote and parent.sampled
    assert parent.trace_state == "congo=t61"
    with tracer.span("handle", parent=parent, kind="server") as span:
        headers = tracex.inject({})
    assert headers["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span.span_id}-01"
    assert headers["tracestate"] == "congo=t61"
    assert tracex.inject() == {}, "nothing to inject outside a span"
    tracer.flush(timeout=10)
    [got] = collector.wait_spans("4bf92f3577b34da6a3ce929d0e0e4736", 1)
    assert got["parent_span_id"] == "00f067aa0ba902b7"
    assert got["flags"] & 0x300 == 0x300, "parent marked remote"

    assert tracex.extract({}) is None
    assert tracex.extract({"traceparent": "garbage"}) is None, "malformed headers are ignored, as W3C asks"
    with pytest.raises(tracex.InvalidContextError) as e:
        tracex.SpanContext.from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
    assert e.value.code == "TRACEX_INVALID_CONTEXT" and isinstance(e.value, ValueError)


def test_sampling_ratio_zero_records_nothing_but_propagates(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(sample_ratio=0.0)
    with tracer.span("dropped") as span:
        span.set_attribute("k", "v")
        assert not span.is_recording
        assert tracex.inject({})["traceparent"].endswith("-00")
    report = tracer.flush(timeout=10)
    assert report.spans_delivered == 0
    assert tracer.stats()["spans_sampled_out"] == 1
    assert collector.trace(span.trace_id) is None


def test_fingerprint_pinning_fetches_the_key(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(collector_public_key=None, collector_fingerprint=collector.fingerprint)
    assert tracer.collector_fingerprint == collector.fingerprint
    with tracer.span("pinned") as span:
        pass
    assert tracer.flush(timeout=10).spans_delivered == 1
    assert collector.wait_spans(span.trace_id, 1)


def test_the_collector_down_at_start_up_delays_nothing_and_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from conftest import start_collector

    down = start_collector(tmp_path_factory.mktemp("down-at-start"))
    down.stop()
    started = time.monotonic()
    tracer = tracex.Tracer(
        endpoint=down.url,
        api_key=down.ingest_key,
        collector_fingerprint=down.fingerprint,
        service_name="pytest-down-at-start",
    )
    try:
        assert time.monotonic() - started < 1, "the constructor does not wait for the collector"
        assert tracer.collector_fingerprint == down.fingerprint
        with tracer.span("root", root=True) as root:
            for i in range(19):
                with tracer.span("verify") as s:
                    s.set_attribute("i", i)
        early = tracer.flush(timeout=0.3)
        assert (early.spans_delivered, early.spans_pending) == (0, 20), early

        down.restart()
        deadline = time.monotonic() + 20
        while tracer.stats()["spans_sent"] < 20 and time.monotonic() < deadline:
            tracer.flush(timeout=0.5)
        report = tracer.shutdown(timeout=5)
        assert (report.spans_failed, report.spans_pending, report.spans_dropped) == (0, 0, 0), report
        spans = down.wait_spans(root.trace_id, 20)
        assert sorted(attrs(s).get("i", -1) for s in spans) == [-1, *range(19)], "every span exactly once"
    finally:
        down.stop()


def test_many_spans_all_arrive(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(service_name="pytest-bulk")
    with tracer.span("bulk-root", root=True) as root:
        for i in range(2000):
            with tracer.span("item") as s:
                s.set_attribute("i", i)
                # Fresh str objects as keys and values (past the binding's string-cache bounds):
                # each must arrive as written.
                s.set_attribute(f"dyn.{i % 300}", str(i * 7))
    report = tracer.flush(timeout=20)
    # Full batches may ship before flush starts; the report counts what was delivered during the
    # call, the stats count everything.
    assert 0 < report.spans_delivered <= 2001 and report.complete, report
    assert tracer.stats()["spans_sent"] == 2001
    spans = collector.wait_spans(root.trace_id, 2001)
    assert len(spans) == 2001
    items = [attrs(s) for s in spans if s["name"] == "item"]
    assert sorted(a["i"] for a in items) == list(range(2000))
    assert all(a[f"dyn.{a['i'] % 300}"] == str(a["i"] * 7) for a in items)


def _send_batches(make_tracer, n: int, **options: object) -> dict[str, int]:
    """Records `n` spans in batches of 10 and shuts down; the tracer's stats."""
    tracer = make_tracer(max_batch_size=10, **options)
    for i in range(n):
        with tracer.span("settle", root=True) as s:
            s.set_attribute("i", i)
    report = tracer.shutdown(timeout=30)
    assert report.spans_delivered == n and report.complete, report
    return tracer.stats()


def test_a_pinned_audit_key_verifies_every_receipt_and_another_key_fails_each(
    collector: Collector, make_tracer
) -> None:
    with urllib.request.urlopen(collector.url + "/v1/audit-key", timeout=10) as r:
        verifier_key = json.loads(r.read())["verifier_key"]
    pinned = _send_batches(make_tracer, 25, service_name="pytest-receipts", audit_key=verifier_key)
    assert pinned["spans_sent"] == 25 and pinned["batches_sent"] >= 3, pinned
    assert pinned["receipts_verified"] == pinned["batches_sent"], pinned
    assert pinned["receipts_failed"] == 0, pinned

    # A valid verifier key, but not this collector's (the audit vectors' test log): every receipt
    # fails, and delivery is unaffected.
    other = json.loads((VECTORS / "audit.json").read_text())["receipt_verifier_key"]
    assert other != verifier_key
    wrong = _send_batches(make_tracer, 25, service_name="pytest-receipts-other", audit_key=other)
    assert wrong["spans_sent"] == 25, wrong
    assert wrong["receipts_failed"] == wrong["batches_sent"] and wrong["receipts_verified"] == 0, wrong

    unpinned = _send_batches(make_tracer, 5, service_name="pytest-receipts-unpinned")
    assert unpinned["receipts_verified"] == unpinned["receipts_failed"] == 0, unpinned

    for service in ("pytest-receipts", "pytest-receipts-other"):
        assert len(collector.traces(f"&service={service}")) == 25, service
