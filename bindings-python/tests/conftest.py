"""Fixtures: the real `tracex-collector` binary on a free loopback port with a throwaway data dir
(SQLite), ingest and read API keys, and helpers to query spans back over the real query API.

The collector binary comes from $TRACEX_COLLECTOR_BIN (scripts/test-python.sh builds it), or else
is the `tracex-collector` beside the running python (`scripts/test-python.sh --prepare` puts one in
.venvs/dev/bin). These tests import the *installed* wheel, never bindings-python/python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

VECTORS = Path(os.environ.get("TRACEX_VECTORS_DIR", Path(__file__).resolve().parents[2] / "tests" / "vectors"))


def pytest_configure(config: pytest.Config) -> None:
    # scripts/test-python.sh runs the suite twice over: `-m "not testing_build"` against each
    # release wheel, `-m testing_build` against the test build (feature `testing`), the only one with
    # `_native._testing`.
    config.addinivalue_line("markers", "testing_build: needs the test build of the wheel (_native._testing)")
    config.addinivalue_line("markers", "release_build: checks the released wheel itself")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A run without `-m` (`pytest -k NAME` in .venvs/dev) skips what cannot pass on the wheel installed:
    # scripts/test-python.sh's `-m` selections never select such a test, so they are unaffected.
    testing = native_testing() is not None
    skip = "release_build" if testing else "testing_build"
    why = "the test build has _native._testing" if testing else "needs the test build (_native._testing)"
    for item in items:
        if skip in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


def native_testing() -> Any:
    """`tracex._native._testing`, present only in the test build; None elsewhere (the tests that use
    it are marked `testing_build` and are not run against a release wheel)."""
    from tracex import _native

    return getattr(_native, "_testing", None)


def collector_bin() -> str:
    path = os.environ.get("TRACEX_COLLECTOR_BIN") or str(Path(sys.executable).parent / "tracex-collector")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no collector at {path}: set TRACEX_COLLECTOR_BIN to the tracex-collector binary, or run"
            " scripts/test-python.sh --prepare and the tests with .venvs/dev/bin/python"
        )
    return path


def cli(data_dir: Path, *args: str) -> str:
    out = subprocess.run(
        [collector_bin(), "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Collector:
    url: str
    data_dir: Path
    proc: subprocess.Popen[str]
    ingest_key: str
    read_key: str
    public_pem: str
    fingerprint: str
    _seen: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)

    def restart(self) -> None:
        """Starts the stopped collector again: same data dir (keys, API keys, spans), same address."""
        self.proc, _ = serve(self.data_dir, urllib.parse.urlsplit(self.url).netloc)

    def get(self, path: str) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.read_key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def trace(self, trace_id: str) -> Optional[dict[str, Any]]:
        """The trace's detail, every page of it (`spans` holds all rows)."""
        status, body = self.get(f"/api/v1/traces/{trace_id}")
        if status == 404:
            return None
        while status == 200 and body.get("next_cursor"):
            status, page = self.get(f"/api/v1/traces/{trace_id}?cursor={body['next_cursor']}")
            if status == 200:
                body["spans"].extend(page["spans"])
                body["next_cursor"] = page["next_cursor"]
        assert status == 200, body
        return body

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of a trace, flattened from the tree."""
        body = self.trace(trace_id)
        out: list[dict[str, Any]] = []

        def walk(nodes: list[dict[str, Any]]) -> None:
            for n in nodes:
                out.append(n)
                walk(n.get("children", []))

        if body is not None:
            walk(body["spans"])
        return out

    def wait_spans(self, trace_id: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Polls until the trace has `count` spans (ingest acknowledges after commit, but a test may
        query between the SDK's send and the ack)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans(trace_id)
            if len(spans) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)

    def traces(self, query: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            q = f"/api/v1/traces?limit=1000{query}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            status, body = self.get(q)
            assert status == 200, body
            out.extend(body["traces"])
            cursor = body.get("next_cursor")
            if not cursor:
                return out


def serve(data_dir: Path, listen: str) -> tuple[subprocess.Popen[str], str]:
    """Runs `tracex-collector serve` on `data_dir`; returns the process and its URL once ready."""
    proc = subprocess.Popen(
        [collector_bin(), "--data-dir", str(data_dir), "serve", "--listen", listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "tracex-collector listening on "
    assert line.startswith(prefix), f"unexpected collector output {line!r}"
    url = line[len(prefix) :]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("collector not ready")
    return proc, url


def start_collector(data_dir: Path) -> Collector:
    data_dir.mkdir(parents=True, exist_ok=True)
    ingest = cli(data_dir, "apikey", "create", "--project", "pytest", "--scope", "ingest").strip()
    read = cli(data_dir, "apikey", "create", "--project", "pytest", "--scope", "read").strip()
    shown = cli(data_dir, "keys", "show")
    pem = shown.split("fingerprint:")[0]
    fingerprint = shown.split("fingerprint:")[1].split()[0]
    proc, url = serve(data_dir, "127.0.0.1:0")
    return Collector(url, data_dir, proc, ingest, read, pem, fingerprint)


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = start_collector(tmp_path_factory.mktemp("collector"))
    yield c
    c.proc.terminate()
    try:
        c.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        c.proc.kill()


@pytest.fixture
def make_tracer(collector: Collector) -> Iterator[Callable[..., Any]]:
    """Tracers talking to the real collector; shut down at the end of the test."""
    import tracex

    made: list[tracex.Tracer] = []

    def make(**options: Any) -> tracex.Tracer:
        opts: dict[str, Any] = dict(
            endpoint=collector.url,
            api_key=collector.ingest_key,
            collector_public_key=collector.public_pem,
            service_name="pytest-py",
        )
        opts.update(options)
        t = tracex.Tracer(**opts)
        made.append(t)
        return t

    yield make
    for t in made:
        try:
            t.shutdown(timeout=5)
        except tracex.ShutdownError:
            pass


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON attributes → plain Python values."""

    def value(v: dict[str, Any]) -> Any:
        if "stringValue" in v:
            return v["stringValue"]
        if "boolValue" in v:
            return v["boolValue"]
        if "intValue" in v:
            return int(v["intValue"])
        if "doubleValue" in v:
            return float(v["doubleValue"])
        if "bytesValue" in v:
            import base64

            return base64.b64decode(v["bytesValue"])
        if "arrayValue" in v:
            return [value(x) for x in v["arrayValue"].get("values", [])]
        if "kvlistValue" in v:
            return {kv["key"]: value(kv["value"]) for kv in v["kvlistValue"].get("values", [])}
        raise AssertionError(f"unknown AnyValue {v}")

    return {kv["key"]: value(kv["value"]) for kv in span.get("attributes", [])}


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter of this venv (for exit-time behaviour)."""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
