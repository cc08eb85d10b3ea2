"""Checks what one stock OpenTelemetry exporter sent (the scenario of emit.py, node/emit.mjs and
rust/src/main.rs) as the collector serves and stores it: exactly one trace of the service with its
two spans, every attribute with its type, the event, kinds, parent link and statuses, and the secret
redacted — in the API's answer and in every byte of the SQLite files.

    python3 check.py URL READ_KEY SERVICE DATA_DIR
"""

import json
import pathlib
import sys
import urllib.request

SECRET = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def get(url, key):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def attrs(span):
    return {a["key"]: a["value"] for a in span["attributes"]}


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def main():
    base, key, service, data_dir = sys.argv[1:5]
    traces = get(f"{base}/api/v1/traces?service={service}", key)["traces"]
    expect("traces of the service", len(traces), 1)
    trace_id = traces[0]["trace_id"]
    expect("root", (traces[0]["root_name"], traces[0]["root_service"]), ("POST /settle", service))
    spans = get(f"{base}/api/v1/traces/{trace_id}", key)["spans"]
    expect("spans", [s["name"] for s in spans], ["POST /settle", "rpc"])
    root, rpc = spans

    expect("root kind", root["kind"], "server")
    expect("root parent", root["parent_span_id"], None)
    expect("root status", root["status"], {"code": "ok", "message": ""})
    expect("root service", root["service_name"], service)
    expect("scope", (root["scope"]["name"], root["scope"]["version"]), ("tracex-otlp-test", "1.0.0"))
    a = attrs(root)
    expect("x402.network", a["x402.network"], {"stringValue": "base"})
    expect("x402.amount", a["x402.amount"], {"intValue": "10000"})
    expect("ratio", a["ratio"], {"doubleValue": 0.25})
    expect("retried", a["retried"], {"boolValue": True})
    expect("tags", a["tags"], {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}})
    expect("wallet.private_key", a["wallet.private_key"], {"stringValue": "[REDACTED]"})
    expect("note", a["note"], {"stringValue": "signed with [REDACTED]"})
    expect(
        "root attributes",
        sorted(a),
        sorted(["x402.network", "x402.amount", "ratio", "retried", "tags", "wallet.private_key", "note"]),
    )

    expect("rpc kind", rpc["kind"], "client")
    expect("rpc parent", rpc["parent_span_id"], root["span_id"])
    expect("rpc trace", rpc["trace_id"], trace_id)
    expect("rpc status", rpc["status"], {"code": "error", "message": "nonce too low"})
    expect("rpc attributes", attrs(rpc), {"rpc.method": {"stringValue": "eth_sendRawTransaction"}})
    expect("events", [(e["name"], attrs(e)) for e in rpc["events"]], [("retry", {"attempt": {"intValue": "2"}})])
    # Times: each span ends after it starts, the child and its event lie within the root. With 2 ms
    # of slack: the JS SDK anchors each span's start to Date.now() (whole milliseconds) and measures
    # its end from there, so a child may end up to 1 ms after its parent.
    slack = 2_000_000
    times = {k: int(s[f"{k}_time_unix_nano"]) for s, k in ((root, "start"), (root, "end"))}
    start, end = int(rpc["start_time_unix_nano"]), int(rpc["end_time_unix_nano"])
    if not (times["start"] <= times["end"] and start <= end):
        raise AssertionError("a span ends before it starts")
    if not (times["start"] - slack <= start and end <= times["end"] + slack):
        raise AssertionError("the rpc span is not within its parent")
    ev = int(rpc["events"][0]["time_unix_nano"])
    if not start - slack <= ev <= end + slack:
        raise AssertionError("the event is not within its span")

    # At rest: not one byte of the secret in the database files (WAL included).
    files = [p for p in pathlib.Path(data_dir).iterdir() if p.name.startswith("tracex.db")]
    if not files:
        raise AssertionError(f"no database files in {data_dir}")
    needle = SECRET[2:].encode()
    for p in files:
        if needle in p.read_bytes():
            raise AssertionError(f"the secret is stored in {p}")
    if not any(b"eth_sendRawTransaction" in p.read_bytes() for p in files):
        raise AssertionError("the at-rest probe does not see stored spans")
    print(f"ok: {service}: 2 spans, attributes, event and statuses exact; the secret redacted at rest")


if __name__ == "__main__":
    main()
