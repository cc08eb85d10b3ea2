"""The audit vectors (tests/vectors/audit.json) through ``tracex.audit``: every receipt, inclusion,
consistency and checkpoint case verifies or is refused with ``AuditError`` (code ``TRACEX_AUDIT``)
exactly as the core's own test (core/tests/audit_vectors.rs) says. Runs against the release wheels:
``tracex.audit`` is public API."""

from __future__ import annotations

import base64
import json

import pytest

import tracex
from conftest import VECTORS
from tracex import audit

DOC = json.loads((VECTORS / "audit.json").read_text())


def b64hex(s: str) -> str:
    return base64.b64decode(s).hex()


def flip(h: str) -> str:
    """The hex hash with the lowest bit of its last byte flipped."""
    return h[:-2] + f"{int(h[-2:], 16) ^ 1:02x}"


def refused(f, *args) -> None:
    with pytest.raises(tracex.AuditError) as e:
        f(*args)
    assert e.value.code == "TRACEX_AUDIT"
    assert isinstance(e.value, tracex.TracexError)


@pytest.mark.parametrize("case", DOC["receipts"], ids=lambda c: c["desc"])
def test_receipt(case: dict) -> None:
    args = (case["note"], case["verifier_key"], case["batch_id"], case["envelope_sha256"])
    if not case["valid"]:
        refused(audit.verify_receipt, *args)
        return
    r = audit.verify_receipt(*args)
    assert isinstance(r, audit.Receipt)
    assert r.leaf_index == case["leaf_index"]
    assert r.received_at_unix_nano == int(case["received_at_unix_nano"])
    assert (r.batch_id, r.envelope_sha256) == (case["batch_id"], case["envelope_sha256"])
    assert r.origin == case["verifier_key"].split("+")[0]


def test_the_receipts_cover_each_refusal() -> None:
    refusals = [c for c in DOC["receipts"] if not c["valid"]]
    assert len(refusals) >= 5 and any(c["valid"] for c in DOC["receipts"])


def test_a_receipt_with_any_byte_of_its_text_flipped_is_refused() -> None:
    case = next(c for c in DOC["receipts"] if c["valid"])
    note = case["note"]
    text_end = note.index("\n\n")
    for at in range(text_end):
        flipped = note[:at] + chr(ord(note[at]) ^ 1) + note[at + 1 :]
        refused(audit.verify_receipt, flipped, case["verifier_key"], case["batch_id"], case["envelope_sha256"])


@pytest.mark.parametrize("case", DOC["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_inclusion(case: dict) -> None:
    leaf, root, proof = b64hex(case["leaf_hash"]), b64hex(case["root"]), [b64hex(h) for h in case["proof"]]
    audit.verify_inclusion(leaf, case["index"], case["size"], proof, root)
    refused(audit.verify_inclusion, leaf, case["index"], case["size"], proof, flip(root))
    for i in range(len(proof)):
        bad = [flip(h) if j == i else h for j, h in enumerate(proof)]
        refused(audit.verify_inclusion, leaf, case["index"], case["size"], bad, root)


@pytest.mark.parametrize("case", DOC["consistency"], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}")
def test_consistency(case: dict) -> None:
    old, new = case["old_size"], case["new_size"]
    old_root, new_root = b64hex(case["old_root"]), b64hex(case["new_root"])
    proof = [b64hex(h) for h in case["proof"]]
    audit.verify_consistency(old, new, old_root, new_root, proof)
    if old > 0:  # every tree extends the empty one, whatever its root
        refused(audit.verify_consistency, old, new, old_root, flip(new_root), proof)
    for i in range(len(proof)):
        bad = [flip(h) if j == i else h for j, h in enumerate(proof)]
        refused(audit.verify_consistency, old, new, old_root, new_root, bad)


@pytest.mark.parametrize("case", DOC["checkpoints"], ids=lambda c: c["desc"])
def test_checkpoint(case: dict) -> None:
    key = DOC["checkpoint_verifier_key"]
    if not case["valid"]:
        refused(audit.open_checkpoint, case["note"], key)
        return
    c = audit.open_checkpoint(case["note"], key)
    assert isinstance(c, audit.Checkpoint)
    assert (c.origin, c.size, c.root_hash) == (DOC["checkpoint_origin"], case["size"], b64hex(case["root"]))
    at = case["signed_at_unix_nano"]
    assert c.signed_at_unix_nano == (None if at is None else int(at))


def test_malformed_input_is_refused() -> None:
    leaf = b64hex(DOC["inclusion"][0]["leaf_hash"])
    refused(audit.verify_inclusion, "zz", 0, 1, [], leaf)
    refused(audit.verify_inclusion, leaf, 0, 1, ["abc"], leaf)
    refused(audit.open_checkpoint, DOC["checkpoints"][0]["note"], "not a key")
    refused(audit.verify_receipt, DOC["receipts"][0]["note"], DOC["receipt_verifier_key"], "00", "00")
