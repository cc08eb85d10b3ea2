"""An asyncio settlement worker traced with tracex.

Each job arrives with the facilitator's `traceparent` (as it would in a queue message's headers);
the worker continues that trace: `settle` (a server-side span per job) → `broadcast` attempts with
retries and backoff → `confirm` polling for the receipt, all with `x402.*` attributes
(docs/semantic-conventions.md). A failed attempt records the exception and `x402.error`; the job
succeeds on a later attempt.

    TRACEX_ENDPOINT=http://127.0.0.1:3002 TRACEX_API_KEY=… TRACEX_COLLECTOR_PUBLIC_KEY=collector.pub.pem \\
        python examples/python-settler/settler.py

It prints each job's trace id; `GET /api/v1/traces/<id>` with a read key shows the tree. Jobs, chain
and RPC are simulated (no network besides the collector); the tracing is real.

`settler.py serve` takes the jobs over HTTP instead: `POST /settle` (the facilitator's
`SETTLER_URL`) continues the caller's trace from the request's `traceparent`; with `LEDGER_URL` each
settlement is then booked in examples/otel-ledger in a client span whose `traceparent` goes along.
That is one trace across three services (examples/otel-ledger/README.md).

    PORT=4022 LEDGER_URL=http://127.0.0.1:4023 TRACEX_ENDPOINT=… TRACEX_API_KEY=… \\
        TRACEX_COLLECTOR_FINGERPRINT=… python examples/python-settler/settler.py serve
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import sys
import urllib.request
from typing import Any, Optional

import tracex

tracer = tracex.Tracer(
    service_name=os.environ.get("TRACEX_SERVICE_NAME", "python-settler"),
    operator_id="settler-eu-1",
    operator_role="settler",
)

MAX_ATTEMPTS = 3
LEDGER_URL = os.environ.get("LEDGER_URL")  # where settlements are booked (serve mode); unset: not booked


class NonceTooLow(Exception):
    """The RPC node rejected the transaction (simulated transient failure)."""


async def rpc_send_raw_transaction(job: dict, attempt: int) -> str:
    await asyncio.sleep(random.uniform(0.002, 0.01))
    if attempt <= job["fails_before_success"]:
        raise NonceTooLow(f"nonce too low (attempt {attempt})")
    return "0x" + secrets.token_hex(32)


@tracer.trace("confirm")
async def confirm(tx_hash: str) -> int:
    span = tracex.current_span()
    assert span is not None
    span.set_attribute("x402.tx_hash", tx_hash)
    for poll in range(1, 4):
        await asyncio.sleep(0.005)
        span.add_event("poll", {"poll": poll})
    span.set_attribute("block.number", 21_000_000 + random.randint(0, 999))
    return 1


def _post_json(url: str, body: dict, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)


async def book(job: dict, tx_hash: str) -> Optional[str]:
    """Books the settlement in the ledger service in a client span; its `traceparent` travels with
    the request, so the ledger's spans join this trace. Returns the ledger's entry id."""
    url = f"{LEDGER_URL}/entries"
    attributes = {"http.request.method": "POST", "url.full": url}
    with tracer.span("POST /entries", kind="client", attributes=attributes) as span:
        headers = tracex.inject({"content-type": "application/json"}, span=span)
        entry = {"tx_hash": tx_hash, "network": job["network"], "amount": job["amount"], "payer": job["payer"]}
        # urllib blocks: in a thread, so that other settlements go on meanwhile.
        status, answer = await asyncio.to_thread(_post_json, url, entry, headers)
        span.set_attribute("http.response.status_code", status)
        return answer.get("entry_id")


async def settle(job: dict) -> dict[str, Any]:
    parent = tracex.extract(job["headers"])  # continue the facilitator's trace
    attributes = {
        "x402.phase": "settle",
        "x402.scheme": "exact",
        "x402.network": job["network"],
        "x402.asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "x402.amount": job["amount"],
        "x402.payer": job["payer"],
        "x402.pay_to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    }
    async with tracer.span("settle", parent=parent, kind="server", attributes=attributes) as span:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with tracer.span("broadcast", kind="client") as tx:
                tx.set_attribute("x402.attempt", attempt)
                try:
                    tx_hash = await rpc_send_raw_transaction(job, attempt)
                except NonceTooLow as e:
                    tx.record_exception(e)
                    tx.set_attribute("x402.error", "nonce_too_low")
                    span.add_event("retry", {"x402.attempt": attempt})
                    await asyncio.sleep(0.01 * 2**attempt)
                    continue
            await confirm(tx_hash)
            span.set_attribute("x402.tx_hash", tx_hash)
            entry = await book(job, tx_hash) if LEDGER_URL else None
            span.set_status("ok")
            return {"trace_id": span.trace_id, "success": True, "txHash": tx_hash, "ledgerEntry": entry}
        span.set_attribute("x402.error", "retries_exhausted")
        span.set_status("error", f"gave up after {MAX_ATTEMPTS} attempts")
        return {"trace_id": span.trace_id, "success": False}


def incoming_jobs(n: int) -> list[dict]:
    """What the queue would deliver: the facilitator's verify span put its traceparent on each."""
    jobs = []
    for i in range(n):
        with tracer.span("verify", root=True, attributes={"x402.phase": "verify"}):  # the upstream side
            headers = tracex.inject({})
        jobs.append(
            {
                "headers": headers,
                "network": "base-sepolia",
                "amount": str(10_000 * (i + 1)),
                "payer": "0x857b06519E91e3A54538791bDbb0E22373e36b66",
                "fails_before_success": i % 3,  # some jobs need retries
            }
        )
    return jobs


async def main() -> None:
    results = await asyncio.gather(*(settle(job) for job in incoming_jobs(int(os.environ.get("JOBS", "5")))))
    for result in results:
        print(result["trace_id"])
    report = tracer.flush(timeout=10)
    print(f"delivered {report.spans_delivered} spans; complete: {report.complete}")


# === serve mode: POST /settle over HTTP (a minimal HTTP/1.1 server on asyncio streams) ===


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One request per connection: `POST /settle` with a JSON payment, answered with the outcome."""
    try:
        method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        payment = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
        if (method, path) != ("POST", "/settle"):
            status, answer = 404, {"error": "not found"}
        else:
            result = await settle(
                {
                    "headers": headers,  # the caller's traceparent: settle() continues its trace
                    "network": payment.get("network", "base-sepolia"),
                    "amount": str(payment.get("amount", "0")),
                    "payer": payment.get("payer", "unknown"),
                    "fails_before_success": int(payment.get("simulateFailures", 0)),
                }
            )
            del result["trace_id"]
            status, answer = (200 if result["success"] else 502), result
    except Exception as e:  # the example answers 500 rather than dropping the connection
        status, answer = 500, {"error": str(e)}
    body = json.dumps(answer).encode()
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    writer.write(f"{head}connection: close\r\n\r\n".encode() + body)
    await writer.drain()
    writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"settler listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    report = tracer.shutdown(timeout=10)
    print(f"delivered {report.spans_delivered} spans; complete: {report.complete}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(serve(int(os.environ.get("PORT", "4022"))))
    else:
        asyncio.run(main())
