"""examples/python-settler runs against the real collector and produces the documented trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Collector, attrs

EXAMPLE = Path(
    os.environ.get(
        "TRACEX_EXAMPLE_SETTLER", Path(__file__).resolve().parents[2] / "examples" / "python-settler" / "settler.py"
    )
)


def test_settler_example(collector: Collector) -> None:
    env = dict(os.environ)
    env.update(
        TRACEX_ENDPOINT=collector.url,
        TRACEX_API_KEY=collector.ingest_key,
        TRACEX_COLLECTOR_PUBLIC_KEY=collector.public_pem,
        TRACEX_SERVICE_NAME="example-settler",
        JOBS="3",
    )
    out = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    trace_ids = [line for line in lines if len(line) == 32]
    assert len(trace_ids) == 3
    for job, trace_id in enumerate(trace_ids):
        retries = job % 3  # the example's job i fails i % 3 times before succeeding
        want = 1 + 1 + (retries + 1) + 1  # verify, settle, broadcast attempts, confirm
        spans = collector.wait_spans(trace_id, want)
        by_name: dict[str, list[dict]] = {}
        for s in spans:
            by_name.setdefault(s["name"], []).append(s)
        [verify], [settle], [confirm] = by_name["verify"], by_name["settle"], by_name["confirm"]
        assert settle["parent_span_id"] == verify["span_id"], "continued from the incoming traceparent"
        assert settle["flags"] & 0x300 == 0x300
        a = attrs(settle)
        assert a["x402.phase"] == "settle" and a["x402.network"] == "base-sepolia"
        assert a["x402.amount"] == str(10_000 * (job + 1))
        assert settle["status"]["code"] == "ok"
        attempts = sorted(by_name["broadcast"], key=lambda s: attrs(s)["x402.attempt"])
        assert [attrs(s)["x402.attempt"] for s in attempts] == list(range(1, retries + 2))
        assert all(s["parent_span_id"] == settle["span_id"] for s in attempts)
        assert all(s["status"]["code"] == "error" and attrs(s)["x402.error"] == "nonce_too_low" for s in attempts[:-1])
        assert attempts[-1]["status"]["code"] == "unset"
        assert [e["name"] for e in settle["events"]] == ["retry"] * retries
        assert confirm["parent_span_id"] == settle["span_id"]
        assert attrs(confirm)["x402.tx_hash"] == a["x402.tx_hash"]
        resource = {kv["key"]: kv["value"].get("stringValue") for kv in settle["resource"]["attributes"]}
        assert resource["x402.operator.role"] == "settler"
