"""Side by side, in one process: tracex vs opentelemetry-sdk (BatchSpanProcessor, no-op exporter) and
ddtrace (its real trace writer, no agent) for the same span shape — start a span (made current), set 4
attributes (3 x402.* strings and an int), end it. Prints ns/span for each and the ratios; then tracex's
end-to-end cost with sealing and sending to a real loopback collector included (process CPU time, all
threads, flush included). The `==` lines are the summary scripts/bench.sh copies into
docs/benchmarks.md.

End to end, OpenTelemetry is measured the same way: its BatchSpanProcessor (queue sized to hold the
burst, as tracex's is) and its stock OTLP/HTTP protobuf exporter posting to the same collector's
OTLP receiver (`POST /v1/traces`, acknowledged after the commit), whole-process CPU until the last
span is acknowledged. ddtrace is compared on the hot path only: its end to end needs a Datadog
agent, which is not run here.

Run by scripts/bench-python.sh, which installs the three SDKs into a bench venv and starts a collector.
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import statistics
import sys
import time

N = int(os.environ.get("BENCH_SPANS", "200000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
# OpenTelemetry's end-to-end bursts are smaller: at tens of µs a span, 200,000 spans x 5 would take
# a minute; per-span CPU does not depend on the burst at this size.
OTEL_E2E_SPANS = int(os.environ.get("BENCH_OTEL_E2E_SPANS", "50000"))


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


def shape_ddtrace(tracer, n: int) -> None:
    # ddtrace's API: `trace()` makes the span current; `set_tag` takes strings, numbers go through
    # `set_metric` (`set_tag` would store the int as a string tag).
    for i in range(n):
        with tracer.trace("settle") as span:
            span.set_tag("x402.network", "base-sepolia")
            span.set_tag("x402.scheme", "exact")
            span.set_tag("x402.amount", "10000")
            span.set_metric("x402.attempt", i)


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


def otel_e2e(endpoint: str, api_key: str) -> tuple[float, list[float], int]:
    """OpenTelemetry end to end: ROUNDS bursts of OTEL_E2E_SPANS spans, each until force_flush has
    exported all of them through the OTLP/HTTP protobuf exporter to the collector (each export
    returns after the collector's commit). Returns the median whole-process CPU ns per span, every
    burst's, and the spans the exporter reported exported (anything short of ROUNDS x burst was
    dropped by the SDK without a count, or refused)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exported = 0
    inner = OTLPSpanExporter(
        endpoint=endpoint.rstrip("/") + "/v1/traces", headers={"Authorization": f"Bearer {api_key}"}
    )

    class Counting(SpanExporter):
        def export(self, spans):
            nonlocal exported
            result = inner.export(spans)
            if result.name == "SUCCESS":
                exported += len(spans)
            return result

        def shutdown(self):
            inner.shutdown()

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-otel-e2e"}))
    provider.add_span_processor(BatchSpanProcessor(Counting(), max_queue_size=2 * OTEL_E2E_SPANS))
    tracer = provider.get_tracer("bench")
    shape_otel(tracer, 5000)  # warm up: the exporter's session and connection
    provider.force_flush(60_000)
    exported = 0
    rounds = []
    for _ in range(ROUNDS):
        gc.collect()
        c0 = time.process_time()
        shape_otel(tracer, OTEL_E2E_SPANS)
        provider.force_flush(120_000)
        rounds.append((time.process_time() - c0) / OTEL_E2E_SPANS * 1e9)
    provider.shutdown()
    return statistics.median(rounds), rounds, exported


class _CountDrops(logging.Handler):
    """Counts ddtrace's "buffer full, dropping" warnings (the one sign that a round measured its cheaper
    drop path). ddtrace rate-limits its logs, so a count above 0 means "some", not how many."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        logging.getLogger("ddtrace.internal.writer.writer").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("trace buffer"):
            self.count += 1


def ddtrace_tracer():
    """ddtrace as an application without an agent gets it: tracing on (DD_TRACE_ENABLED stays true),
    the default trace writer (a NativeWriter for http://localhost:8126, nothing listening).

    Why not a writer that discards: ddtrace encodes each finished trace into its native buffer on the
    calling thread (`NativeWriter.write`), so replacing the writer would drop part of its real hot
    path. What the missing agent changes is the background side only: every second (and at our
    flushes, outside the timing) the writer encodes the buffer into a payload, fails to connect, and
    drops it, logging one rate-limited error; with an agent it would send it. That thread competes for
    the GIL as it would in production, short of the HTTP request. The 20 MB default buffer holds
    more than a second of spans at this rate; `_CountDrops` would show it if not.

    Instrumentation telemetry and remote configuration are turned off: background services that poll
    the absent agent and are not part of recording a span. ddtrace reads its settings at import, so
    they are set before it is imported (after tracex and OpenTelemetry are measured, so its import
    hooks are not there for theirs)."""
    os.environ.setdefault("DD_SERVICE", "bench")
    os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
    from ddtrace.trace import tracer

    return tracer


def summary(wheel: str, ours: tuple[float, float], name: str, theirs: tuple[float, float]) -> str:
    """One `==` line: our figures, the peer's and the ratios (wall, calling-thread CPU)."""
    return (
        f"== python hot path ({wheel}): tracex {ours[0]:.0f} ns wall, {ours[1]:.0f} ns CPU per span vs "
        f"{name} {theirs[0]:.0f} ns wall, {theirs[1]:.0f} ns CPU -> tracex is {theirs[0] / ours[0]:.1f}x faster "
        f"(wall), {theirs[1] / ours[1]:.1f}x (CPU)"
    )


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
    # Before ddtrace is imported: its import hooks stay out of OpenTelemetry's exporter.
    ot_e2e, ot_e2e_rounds, ot_exported = otel_e2e(os.environ["TRACEX_ENDPOINT"], os.environ["TRACEX_API_KEY"])

    dd = ddtrace_tracer()
    dd_drops = _CountDrops()
    shape_ddtrace(dd, 20000)
    dd.flush()
    ddt = per_span_ns(shape_ddtrace, dd, N, dd.flush)
    dd.shutdown(timeout=10)  # its writer thread stays out of tracex's end-to-end figure below

    # End to end: CPU time of the whole process (every thread: recording, batching, redaction, OTLP
    # encoding, sealing, HTTP) per span, for N spans delivered to the collector, flush included.
    # The median of ROUNDS bursts, like the hot path; the first burst is printed too: it also pays
    # for growing the heap again after the peers' rounds (page faults on the recording thread).
    e2e_cpu_rounds, e2e_wall_rounds = [], []
    before = tx.stats()["spans_sent"]
    for _ in range(ROUNDS):
        gc.collect()
        c0 = time.process_time()
        w0 = time.perf_counter()
        shape_tracex(tx, N)
        report = tx.flush(timeout=120)
        e2e_cpu_rounds.append((time.process_time() - c0) / N * 1e9)
        e2e_wall_rounds.append((time.perf_counter() - w0) / N * 1e9)
    e2e_cpu, e2e_wall = statistics.median(e2e_cpu_rounds), statistics.median(e2e_wall_rounds)
    sent = tx.stats()["spans_sent"] - before
    rounds_text = ", ".join(f"{c:.0f}" for c in e2e_cpu_rounds)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}")
    otel_name = f"opentelemetry-sdk {version('opentelemetry-sdk')}"
    dd_name = f"ddtrace {version('ddtrace')}"
    print(f"tracex {tracex.__version__} | {otel_name} | {dd_name}")
    print(
        f"span shape: with span('settle'): 4 x set_attribute (3 x402.* str, 1 int); {N} spans x {ROUNDS} rounds, median"
    )
    print("                   wall ns/span   caller-thread CPU ns/span")
    print(f"tracex             {ours[0]:12.0f}   {ours[1]:12.0f}     (dropped: {dropped})")
    print(f"opentelemetry-sdk  {otel[0]:12.0f}   {otel[1]:12.0f}")
    print(f"ratio (otel/tracex){otel[0] / ours[0]:11.1f}x  {otel[1] / ours[1]:12.1f}x")
    print(f"ddtrace            {ddt[0]:12.0f}   {ddt[1]:12.0f}     (buffer-full warnings: {dd_drops.count})")
    print(f"ratio (dd/tracex)  {ddt[0] / ours[0]:11.1f}x  {ddt[1] / ours[1]:12.1f}x")
    print(
        f"tracex end to end  {e2e_cpu:8.0f} ns CPU/span (all threads, median of {ROUNDS} bursts: {rounds_text}), "
        f"{e2e_wall:.0f} ns wall/span; {sent} of {ROUNDS * N} spans delivered to the collector, last report: {report!r}"
    )
    wheel = os.environ.get("BENCH_WHEEL", "tracex wheel")
    print(summary(wheel, ours, otel_name, otel))
    print(summary(wheel, ours, dd_name, ddt))
    print(
        f"== python end to end ({wheel}): tracex {e2e_cpu:.0f} ns CPU per span (all threads; median of "
        f"{ROUNDS} bursts of {N}, first {e2e_cpu_rounds[0]:.0f}), "
        f"{sent} of {ROUNDS * N} spans delivered; dropped on the hot path: tracex {dropped}, "
        f"ddtrace buffer-full warnings {dd_drops.count}"
    )
    ot_text = ", ".join(f"{c:.0f}" for c in ot_e2e_rounds)
    print(
        f"== python end to end ({wheel}): {otel_name} with its OTLP/HTTP protobuf exporter {ot_e2e:.0f} ns CPU "
        f"per span (all threads; median of {ROUNDS} bursts of {OTEL_E2E_SPANS}: {ot_text}), "
        f"{ot_exported} of {ROUNDS * OTEL_E2E_SPANS} spans acknowledged by the collector -> tracex is "
        f"{ot_e2e / e2e_cpu:.1f}x cheaper end to end"
    )
    tx.shutdown(timeout=10)
    provider.shutdown()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
