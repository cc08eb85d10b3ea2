"""One trace across three services (examples/otel-ledger/README.md), checked as the collector serves
it; run by scripts/test-cross-service.sh with the services started by it.

    python3 check.py request FACILITATOR_URL
        POSTs one payment to the facilitator's /settle as a caller would, with a traceparent of its
        own (a fresh trace id and span id); prints "TRACE_ID SPAN_ID".
    python3 check.py trace COLLECTOR_URL READ_KEY TRACE_ID SPAN_ID
        reads that trace back through the query API (after the services have flushed and stopped)
        and checks that it holds the spans of all three services with every parent link intact:
        each service's server span is the child of the client span that called it, by span id.
"""

import json
import secrets
import sys
import time
import urllib.request

FACILITATOR, SETTLER, LEDGER = "x402-facilitator", "python-settler", "otel-ledger"


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def get(url, key):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def attrs(span):
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def request(facilitator):
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    payment = {"network": "base-sepolia", "amount": "10000", "payer": "0xabc", "simulateFailures": 1}
    req = urllib.request.Request(
        f"{facilitator}/settle",
        data=json.dumps(payment).encode(),
        headers={"traceparent": f"00-{trace_id}-{span_id}-01", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.load(r)
        expect("facilitator status", r.status, 200)
        # The facilitator answers with its server span's traceparent: same trace.
        expect("trace of the answer", r.headers["traceparent"].split("-")[1], trace_id)
    expect("settled", answer["success"], True)
    if not (answer.get("txHash", "").startswith("0x") and answer.get("ledgerEntry")):
        raise AssertionError(f"the settler or the ledger did not answer: {answer!r}")
    print(trace_id, span_id)


def one(spans, service, kind, name):
    found = [s for s in spans if (s["service_name"], s["kind"], s["name"]) == (service, kind, name)]
    expect(f"{service} {kind} spans named {name!r}", len(found), 1)
    return found[0]


def check_trace(base, key, trace_id, caller_span_id):
    # The services flushed when they stopped and ingest acknowledges after commit; the short poll
    # only guards against reading between a delivery and its commit.
    deadline = time.monotonic() + 10
    while True:
        detail = get(f"{base}/api/v1/traces/{trace_id}", key)
        spans = detail["spans"]
        if {s["service_name"] for s in spans} >= {FACILITATOR, SETTLER, LEDGER} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    expect("next_cursor (one page)", detail["next_cursor"], None)
    expect("services in the trace", sorted({s["service_name"] for s in spans}), sorted([FACILITATOR, SETTLER, LEDGER]))
    for s in spans:
        expect(f"trace id of {s['name']}", s["trace_id"], trace_id)

    # The chain of calls, each hop by span id: caller → facilitator → settler → ledger.
    fac_server = one(spans, FACILITATOR, "server", "POST /settle")
    expect("facilitator server span's parent (the caller's span)", fac_server["parent_span_id"], caller_span_id)
    fac_client = one(spans, FACILITATOR, "client", "POST /settle")
    expect("facilitator client span's parent", fac_client["parent_span_id"], fac_server["span_id"])
    settle = one(spans, SETTLER, "server", "settle")
    expect(
        "settler server span's parent (the facilitator's client span)", settle["parent_span_id"], fac_client["span_id"]
    )
    book = one(spans, SETTLER, "client", "POST /entries")
    expect("settler client span's parent", book["parent_span_id"], settle["span_id"])
    ledger = one(spans, LEDGER, "server", "POST /entries")
    expect("ledger server span's parent (the settler's client span)", ledger["parent_span_id"], book["span_id"])
    append = one(spans, LEDGER, "internal", "ledger.append")
    expect("ledger.append's parent", append["parent_span_id"], ledger["span_id"])

    # The settler's own work hangs under its server span: one failed attempt, then success.
    attempts = [s for s in spans if s["name"] == "broadcast"]
    expect("broadcast attempts", len(attempts), 2)
    confirm = one(spans, SETTLER, "internal", "confirm")
    for s in [*attempts, confirm]:
        expect(f"{s['name']}'s parent", s["parent_span_id"], settle["span_id"])

    # Every span's parent is in this trace, except the root's (the caller's span, not traced).
    ids = {s["span_id"] for s in spans}
    orphans = [s["name"] for s in spans if s["parent_span_id"] not in ids and s is not fac_server]
    expect("spans whose parent is not in the trace", orphans, [])
    expect(
        "detached rows",
        [(s["name"], s.get("detached")) for s in spans if s.get("detached")],
        [("POST /settle", "parent_not_stored")],
    )

    # One settlement, seen by all three: the same transaction hash everywhere.
    tx_hash = attrs(settle)["x402.tx_hash"]
    expect("facilitator's tx hash", attrs(fac_server)["x402.tx_hash"], tx_hash)
    expect("ledger's tx hash", attrs(append)["x402.tx_hash"], tx_hash)
    # The ledger's spans came in over OTLP from the stock SDK: its scope and resource say so.
    expect("ledger scope", ledger["scope"]["name"], "otel-ledger")
    sdk = {a["key"]: a["value"].get("stringValue") for a in ledger["resource"]["attributes"]}
    expect(
        "ledger SDK", (sdk.get("telemetry.sdk.name"), sdk.get("telemetry.sdk.language")), ("opentelemetry", "python")
    )

    # And nothing went astray into a trace of its own: the project holds exactly this one trace.
    traces = get(f"{base}/api/v1/traces?limit=100", key)["traces"]
    expect("traces in the project", [t["trace_id"] for t in traces], [trace_id])
    print(
        f"ok: one trace {trace_id}: {len(spans)} spans from {FACILITATOR}, {SETTLER} and {LEDGER}; "
        "each server span is the child of its caller's client span"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["request"]:
        request(sys.argv[2])
    elif sys.argv[1:2] == ["trace"]:
        check_trace(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
