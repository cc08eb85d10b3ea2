"""Side by side, in one process: tracex vs opentelemetry-sdk (BatchSpanProcessor, no-op exporter)
for the same span shape — start a span (made current), set 4 attributes (3 x402.* strings and an
int), end it. Prints ns/span for each and the ratio; then the end-to-end cost with sealing and
sending to a real loopback collector included (process CPU time, all threads, flush included).

Run by scripts/bench-python.sh, which installs both SDKs into a bench venv and starts a collector.
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time

N = int(os.environ.get("BENCH_SPANS", "200000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def shape_tracex(tracer, n: int) -> None:
    for i in range(n):
        with tracer.span("settle") as span:
            span.set_attribute("x402.network", "base-sepolia")
            span.set_attribute("x402.scheme", "exact")
            span.set_attribute("x402.amount", "10000")
            span.set_attribute("x402.attempt", i)


def shape_otel(tracer, n: int) -> None:
    for i in range(n):
        with tracer.start_as_current_span("settle") as span:
            span.set_attribute("x402.network", "base-sepolia")
            span.set_attribute("x402.scheme", "exact")
            span.set_attribute("x402.amount", "10000")
            span.set_attribute("x402.attempt", i)


def per_span_ns(fn, tracer, n: int, flush) -> tuple[float, float]:
    """Medians over rounds, per span: wall time, and CPU time of the calling thread (what the
    application pays; on a shared machine it is also immune to preemption). The exporter/worker
    runs on its own thread, concurrently, and is flushed between rounds (outside the timed region)."""
    wall, cpu = [], []
    for _ in range(ROUNDS):
        flush()
        gc.collect()
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        fn(tracer, n)
        wall.append((time.perf_counter_ns() - t0) / n)
        cpu.append((time.thread_time_ns() - c0) / n)
    flush()
    return statistics.median(wall), statistics.median(cpu)


def otel_tracer():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NoopExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=N + 1))
    return provider, provider.get_tracer("bench")


def main() -> None:
    from importlib.metadata import version

    import tracex

    os.environ["TRACEX_ENDPOINT"]  # required: a KeyError now rather than a config error later
    # Hot path: a real tracer (worker threads, sealing, HTTP to the loopback collector) with a
    # buffer big enough that no span of a round is dropped.
    tx = tracex.Tracer(service_name="bench", max_queue_size=N + 1, max_batch_size=2048)
    provider, ot = otel_tracer()

    shape_tracex(tx, 20000)  # warm up both
    shape_otel(ot, 20000)
    tx.flush(timeout=60)
    provider.force_flush()

    ours = per_span_ns(shape_tracex, tx, N, lambda: tx.flush(timeout=60))
    otel = per_span_ns(shape_otel, ot, N, provider.force_flush)
    dropped = tx.stats()["spans_dropped"]

    # End to end: CPU time of the whole process (every thread: recording, batching, redaction, OTLP
    # encoding, sealing, HTTP) per span, for N spans delivered to the collector, flush included.
    before = tx.stats()["spans_sent"]
    c0 = time.process_time()
    w0 = time.perf_counter()
    shape_tracex(tx, N)
    report = tx.flush(timeout=120)
    e2e_cpu = (time.process_time() - c0) / N * 1e9
    e2e_wall = (time.perf_counter() - w0) / N * 1e9
    sent = tx.stats()["spans_sent"] - before

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}")
    print(f"tracex {tracex.__version__} | opentelemetry-sdk {version('opentelemetry-sdk')}")
    print(
        f"span shape: with span('settle'): 4 x set_attribute (3 x402.* str, 1 int); {N} spans x {ROUNDS} rounds, median"
    )
    print("                   wall ns/span   caller-thread CPU ns/span")
    print(f"tracex             {ours[0]:12.0f}   {ours[1]:12.0f}     (dropped: {dropped})")
    print(f"opentelemetry-sdk  {otel[0]:12.0f}   {otel[1]:12.0f}")
    print(f"ratio (otel/tracex){otel[0] / ours[0]:11.1f}x  {otel[1] / ours[1]:12.1f}x")
    print(
        f"tracex end to end  {e2e_cpu:8.0f} ns CPU/span (all threads), {e2e_wall:.0f} ns wall/span; "
        f"{sent} of {N} spans delivered to the collector, report: {report!r}"
    )
    tx.shutdown(timeout=10)
    provider.shutdown()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
