"""After os.fork() the child gets a working tracer of its own (fresh worker threads, reseeded ids,
its own envelope instance); its spans arrive, and the parent keeps working."""

from __future__ import annotations

import json
import os

import pytest

import tracex
from conftest import Collector


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_spans_arrive_and_parent_keeps_working(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(service_name="pytest-fork")
    with tracer.span("job", root=True) as job:
        with tracer.span("before-fork"):
            pass  # still buffered in the parent when it forks
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: anything that goes wrong must still reach os._exit
            code = 1
            try:
                os.close(r)
                ids = []
                with tracer.span("child-work") as s:  # the current span (job) was inherited
                    s.set_attribute("pid", os.getpid())
                    ids.append(s.span_id)
                    for _ in range(3):
                        with tracer.span("child-step") as step:
                            ids.append(step.span_id)
                report = tracer.flush(timeout=10)
                os.write(w, json.dumps({"delivered": report.spans_delivered, "ids": ids}).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        child = json.loads(os.read(r, 65536))
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        with tracer.span("parent-after-fork") as after:
            pass
    assert child["delivered"] == 4, child
    report = tracer.flush(timeout=10)
    assert report.spans_delivered == 3 and report.complete, report  # before-fork, parent-after-fork, job

    spans = collector.wait_spans(job.trace_id, 7)
    by_name: dict[str, list[dict]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    assert sorted(by_name) == ["before-fork", "child-step", "child-work", "job", "parent-after-fork"]
    assert len(by_name["child-step"]) == 3 and len(by_name["before-fork"]) == 1
    [work] = by_name["child-work"]
    assert work["parent_span_id"] == job.span_id
    assert all(s["parent_span_id"] == work["span_id"] for s in by_name["child-step"])
    assert sorted(child["ids"]) == sorted([work["span_id"]] + [s["span_id"] for s in by_name["child-step"]])
    assert after.span_id not in child["ids"]
    assert len({s["span_id"] for s in spans}) == len(spans) == 7, "parent and child never repeat ids"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_workers(collector: Collector, make_tracer) -> None:
    import multiprocessing

    tracer = make_tracer(service_name="pytest-mp")
    ctx = multiprocessing.get_context("fork")
    with tracer.span("pool-job", root=True) as job:
        procs = [ctx.Process(target=_mp_worker, args=(tracer, i)) for i in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    tracer.flush(timeout=10)
    spans = collector.wait_spans(job.trace_id, 4)
    names = sorted(s["name"] for s in spans)
    assert names == ["mp-0", "mp-1", "mp-2", "pool-job"]
    assert all(s["parent_span_id"] == job.span_id for s in spans if s["name"] != "pool-job")


def _mp_worker(tracer: tracex.Tracer, i: int) -> None:
    with tracer.span(f"mp-{i}"):
        pass
    # multiprocessing ends fork children with os._exit (no atexit): flush explicitly.
    assert tracer.flush(timeout=10).spans_delivered == 1
