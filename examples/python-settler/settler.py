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
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets

import tracex

tracer = tracex.Tracer(
    service_name=os.environ.get("TRACEX_SERVICE_NAME", "python-settler"),
    operator_id="settler-eu-1",
    operator_role="settler",
)

MAX_ATTEMPTS = 3


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


async def settle(job: dict) -> str:
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
            span.set_status("ok")
            return span.trace_id
        span.set_attribute("x402.error", "retries_exhausted")
        span.set_status("error", f"gave up after {MAX_ATTEMPTS} attempts")
        return span.trace_id


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
    trace_ids = await asyncio.gather(*(settle(job) for job in incoming_jobs(int(os.environ.get("JOBS", "5")))))
    for trace_id in trace_ids:
        print(trace_id)
    report = tracer.flush(timeout=10)
    print(f"delivered {report.spans_delivered} spans; complete: {report.complete}")


if __name__ == "__main__":
    asyncio.run(main())
