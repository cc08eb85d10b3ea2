"""At interpreter exit, buffered spans are delivered without an explicit flush; with the collector
down, exit still finishes in bounded time and says what was not delivered."""

from __future__ import annotations

import os
import time

from conftest import Collector, run_python
from test_errors import closed_port_url

SCRIPT = """
import tracex
tracer = tracex.Tracer(service_name="pytest-exit", retry_timeout=0.5)
with tracer.span("exit-flush") as span:
    span.set_attribute("x402.phase", "settle")
print(span.trace_id, flush=True)
# no flush(), no shutdown(): the atexit hook delivers
"""


def env_for(collector: Collector, endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRACEX_ENDPOINT=endpoint,
        TRACEX_API_KEY=collector.ingest_key,
        TRACEX_COLLECTOR_PUBLIC_KEY=collector.public_pem,
    )
    return env


def test_spans_are_delivered_at_exit(collector: Collector) -> None:
    out = run_python(SCRIPT, env_for(collector, collector.url))
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip()
    [got] = collector.wait_spans(trace_id, 1)
    assert got["name"] == "exit-flush" and got["service_name"] == "pytest-exit"
    assert out.stderr == ""


def test_exit_with_the_collector_down_is_bounded_and_reported(collector: Collector) -> None:
    started = time.monotonic()
    out = run_python(SCRIPT, env_for(collector, closed_port_url()))
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 15
    assert "not every span was delivered" in out.stderr and "spans_failed=1" in out.stderr, out.stderr
