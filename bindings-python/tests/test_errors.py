"""Bad input gets a clear exception (with a stable code) at construction; delivery problems never
raise into the caller, they are reported by flush() and counted; nothing is lost when a spool is
configured and the collector is down."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

import tracex
from conftest import VECTORS, Collector, attrs


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


PEM = (VECTORS / "collector-test-key.pub.pem").read_text()


@pytest.mark.parametrize(
    ("options", "error", "code", "words"),
    [
        ({}, tracex.ConfigError, "TRACEX_CONFIG", "collector public key is required"),
        (
            {"collector_public_key": PEM, "endpoint": "ftp://x"},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "must start with http",
        ),
        (
            {"collector_public_key": PEM, "endpoint": "http://127.0.0.1:1"},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "API key is required",
        ),
        (
            {"collector_public_key": PEM, "sample_ratio": 1.5},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "sample_ratio must be within [0, 1], got 1.5",
        ),
        (
            {"collector_public_key": PEM, "max_batch_size": 0},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "max_batch_size must be a positive integer, got 0",
        ),
        (
            {"collector_public_key": PEM, "scheduled_delay": -1.0},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "scheduled_delay",
        ),
        (
            {"collector_public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"},
            tracex.PublicKeyError,
            "TRACEX_PUBLIC_KEY",
            "public key",
        ),
        ({"collector_public_key": "/nonexistent/key.pem"}, tracex.ConfigError, "TRACEX_CONFIG", "neither PEM"),
        ({"collector_fingerprint": "0" * 63}, tracex.ConfigError, "TRACEX_CONFIG", "want 64 hex digits"),
        (
            {"collector_public_key": PEM, "audit_key": "tracex.test/log+abb42c30"},
            tracex.ConfigError,
            "TRACEX_CONFIG",
            "audit_key must be a signed-note verifier key",
        ),
    ],
)
def test_bad_config_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch, options, error, code, words) -> None:
    for var in (
        "TRACEX_ENDPOINT",
        "TRACEX_API_KEY",
        "TRACEX_COLLECTOR_PUBLIC_KEY",
        "TRACEX_COLLECTOR_FINGERPRINT",
        "TRACEX_SAMPLE_RATIO",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(error) as e:
        tracex.Tracer(service_name="bad", **options)
    assert e.value.code == code
    assert words in str(e.value), str(e.value)
    assert isinstance(e.value, tracex.TracexError) and isinstance(e.value, ValueError)


def test_collector_unreachable_when_fetching_the_pinned_key() -> None:
    # The constructor never waits for the collector: the key is fetched in the background, and
    # spans that never got it are counted as failed at shutdown (plaintext never goes to disk).
    tracer = tracex.Tracer(endpoint=closed_port_url(), api_key="k", collector_fingerprint="00" * 32)
    assert tracer.collector_fingerprint == "00" * 32
    for _ in range(3):
        with tracer.span("waiting"):
            pass
    assert tracer.flush(timeout=0.3).spans_pending == 3
    report = tracer.shutdown(timeout=1)
    assert (report.spans_failed, report.spans_pending) == (3, 0), report


def test_fingerprint_mismatch(collector: Collector) -> None:
    with pytest.raises(tracex.FingerprintMismatchError) as e:
        tracex.Tracer(collector_public_key=collector.public_pem, collector_fingerprint="ab" * 32)
    assert e.value.code == "TRACEX_FINGERPRINT_MISMATCH"
    assert "fingerprint mismatch" in str(e.value)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        tracex.Tracer("http://127.0.0.1:1")  # type: ignore[misc]


def test_environment_fallbacks(collector: Collector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pem = tmp_path / "collector.pub.pem"
    pem.write_text(collector.public_pem)
    monkeypatch.setenv("TRACEX_ENDPOINT", collector.url)
    monkeypatch.setenv("TRACEX_API_KEY", collector.ingest_key)
    monkeypatch.setenv("TRACEX_COLLECTOR_PUBLIC_KEY", str(pem))  # a path works as well as PEM text
    monkeypatch.setenv("TRACEX_SERVICE_NAME", "from-env")
    tracer = tracex.Tracer()
    try:
        with tracer.span("env") as span:
            pass
        assert tracer.flush(timeout=10).spans_delivered == 1
        [got] = collector.wait_spans(span.trace_id, 1)
        assert got["service_name"] == "from-env"
    finally:
        tracer.shutdown()


def test_bad_attribute_values_raise_and_keep_the_span(collector: Collector, make_tracer) -> None:
    tracer = make_tracer()
    with tracer.span("typed") as span:
        with pytest.raises(TypeError, match="unsupported attribute value of type object"):
            span.set_attribute("k", object())
        with pytest.raises(ValueError, match="64 bits"):
            span.set_attribute("big", 2**70)
        with pytest.raises(TypeError, match="keys must be str"):
            span.set_attributes({1: "x"})
        with pytest.raises(ValueError, match="unknown status"):
            span.set_status("maybe")
        span.set_attribute("ok", "kept")
    with pytest.raises(ValueError, match="unknown span kind"):
        tracer.span("x", kind="sideways")
    tracer.flush(timeout=10)
    [got] = collector.wait_spans(span.trace_id, 1)
    assert [a["key"] for a in got["attributes"]] == ["ok"]


def test_wrong_api_key_is_reported_not_raised(collector: Collector, make_tracer) -> None:
    tracer = make_tracer(api_key="tx_ingest_not-a-real-key")
    with tracer.span("unauthorised"):
        pass
    report = tracer.flush(timeout=10)
    assert report.spans_failed == 1 and report.spans_delivered == 0 and not report.complete, report
    assert tracer.stats()["spans_failed"] == 1


def test_wrong_collector_key_is_rejected_by_the_collector(collector: Collector, make_tracer) -> None:
    # Sealed to a key the collector does not hold: it cannot open the batch and says so.
    tracer = make_tracer(collector_public_key=(VECTORS / "collector-test-key.pub.pem").read_text())
    with tracer.span("unreadable") as span:
        pass
    report = tracer.flush(timeout=10)
    assert report.spans_failed == 1 and report.spans_delivered == 0, report
    assert collector.trace(span.trace_id) is None


def test_collector_down_without_spool_counts_failures(make_tracer) -> None:
    tracer = make_tracer(endpoint=closed_port_url(), retry_timeout=0.3)
    with tracer.span("lost"):
        pass
    report = tracer.flush(timeout=10)
    assert report.spans_failed == 1 and not report.complete, report


def unspooled(tracer, expected: int, timeout: float = 10.0) -> int:
    """`spans_unspooled` once it reaches `expected` (or the timeout passes): the collector stores a
    batch before its acknowledgement reaches the SDK, which counts it only then, so a test that saw
    the spans stored must still wait for the count."""
    deadline = time.monotonic() + timeout
    while tracer.stats()["spans_unspooled"] < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return tracer.stats()["spans_unspooled"]


def test_collector_down_with_spool_loses_nothing(collector: Collector, make_tracer, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    down = make_tracer(endpoint=closed_port_url(), retry_timeout=0.3, spool_dir=spool, max_batch_size=10)
    with down.span("root", root=True) as root:
        for i in range(49):
            with down.span("spooled") as span:
                span.set_attribute("i", i)
    report = down.flush(timeout=10)
    assert report.spans_spooled == 50 and report.spans_failed == 0, report
    down.shutdown(timeout=2)
    assert len(list(spool.glob("*.trxb"))) == 5, "the sealed batches wait on disk"

    up = make_tracer(spool_dir=spool)  # same spool, collector reachable: replays it
    spans = collector.wait_spans(root.trace_id, 50, timeout=30)
    assert len(spans) == 50 and len({s["span_id"] for s in spans}) == 50, "each span exactly once"
    assert sorted(attrs(s).get("i", -1) for s in spans) == [-1, *range(49)]
    assert unspooled(up, 50) == 50


def test_past_spool_max_bytes_the_oldest_batches_are_evicted_and_counted(
    collector: Collector, make_tracer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # Room for a few single-span batches of ~700 bytes.
    down = make_tracer(
        endpoint=closed_port_url(), retry_timeout=0.2, spool_dir=spool, spool_max_bytes=4000, max_batch_size=1
    )
    with down.span("root", root=True) as root:
        for i in range(11):
            with down.span("settle") as span:
                span.set_attribute("i", i)
    report = down.shutdown(timeout=20)
    stats = down.stats()
    assert report.spans_spooled == 12 and report.spans_pending == 0, report
    assert 0 < stats["spans_spool_failed"] < 12, stats
    assert stats["spans_failed"] == stats["spans_spool_failed"], "evictions are the only failures"
    kept = 12 - stats["spans_spool_failed"]
    assert len(list(spool.glob("*.trxb"))) == kept

    up = make_tracer(spool_dir=spool)
    spans = collector.wait_spans(root.trace_id, kept, timeout=30)
    # The newest survived (the root ended last), each exactly once.
    assert len(spans) == kept and len({s["span_id"] for s in spans}) == kept
    assert sorted(attrs(s).get("i", -1) for s in spans) == [-1, *range(12 - kept, 11)]
    assert unspooled(up, kept) == kept


def test_spool_max_bytes_must_be_positive(make_tracer) -> None:
    with pytest.raises(tracex.ConfigError, match="spool_max_bytes must be a positive integer, got 0"):
        make_tracer(spool_max_bytes=0)


def test_shutdown_then_use(make_tracer) -> None:
    tracer = make_tracer()
    report = tracer.shutdown(timeout=5)
    assert report.complete
    with pytest.raises(tracex.ShutdownError) as e:
        tracer.flush()
    assert e.value.code == "TRACEX_SHUTDOWN" and isinstance(e.value, RuntimeError)
    with pytest.raises(tracex.ShutdownError):
        tracer.shutdown()
    with tracer.span("after-shutdown"):  # never raises into the caller; dropped and counted
        pass
    assert tracer.stats()["spans_dropped"] == 1


def test_error_hierarchy() -> None:
    assert issubclass(tracex.TransportError, ConnectionError)
    assert issubclass(tracex.RejectedError, tracex.TransportError)
    assert issubclass(tracex.FlushTimeoutError, TimeoutError)
    assert issubclass(tracex.SpoolError, OSError)
    assert issubclass(tracex.FingerprintMismatchError, tracex.ConfigError)
    for name in tracex._errors.__all__:
        cls = getattr(tracex, name)
        assert issubclass(cls, tracex.TracexError) and cls.code.startswith("TRACEX_")


def test_flush_waits_with_the_gil_released(make_tracer) -> None:
    import threading
    import time

    tracer = make_tracer(endpoint=closed_port_url(), retry_timeout=30)  # keeps retrying past the flush
    with tracer.span("stuck"):
        pass
    started, done = threading.Event(), threading.Event()
    result = {}

    def flush() -> None:
        started.set()
        t0 = time.monotonic()
        result["report"] = tracer.flush(timeout=1.0)
        result["waited"] = time.monotonic() - t0
        done.set()

    thread = threading.Thread(target=flush)
    thread.start()
    started.wait()
    progress = 0
    while not done.is_set():  # Python keeps running here only if flush released the GIL
        progress += 1
    thread.join()
    assert result["waited"] >= 0.9
    assert result["report"].spans_pending == 1, result["report"]
    assert progress > 100_000, progress
    report = tracer.shutdown(timeout=0.2)  # gives up retrying: counted as failed, not lost silently
    assert report.spans_failed == 1, report
