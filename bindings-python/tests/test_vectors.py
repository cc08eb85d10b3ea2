"""The shared wire-format vectors (tests/vectors/envelope-v1.json), checked through this binding's
build of the core: the RSA-OAEP wrap and the envelope are reproduced byte for byte, opening yields
the OTLP request and its spans, and every tampered envelope is rejected with EnvelopeError. Needs
the test build of the wheel (feature ``testing``, see conftest.py)."""

from __future__ import annotations

import json

import pytest

import tracex
from conftest import VECTORS, native_testing

pytestmark = pytest.mark.testing_build
_testing = native_testing()

DOC = json.loads((VECTORS / "envelope-v1.json").read_text())
PUBLIC_PEM = (VECTORS / DOC["public_key_pem_file"]).read_text()
CASES = DOC["cases"]


def header_of(case: dict) -> dict:
    h = case["header"]
    return {
        "flags": h["flags"],
        "key_id": bytes.fromhex(case["key_id"]),
        "batch_id": bytes.fromhex(h["batch_id"]),
        "instance_id": bytes.fromhex(h["instance_id"]),
        "sequence": h["sequence"],
        "created_at_unix_nano": int(h["created_at_unix_nano"]),
        "sdk_name": h["sdk_name"],
        "sdk_version": h["sdk_version"],
        "wrapped_key": bytes.fromhex(case["wrapped_key"]),
        "nonce": bytes.fromhex(h["nonce"]),
    }


def test_there_are_vectors() -> None:
    assert len(CASES) >= 3
    assert _testing.key_id(PUBLIC_PEM) == DOC["key_id_hex"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sealing_reproduces_the_vector(case: dict) -> None:
    data_key = bytes.fromhex(case["data_key"])
    wrapped = _testing.wrap_key(PUBLIC_PEM, data_key, bytes.fromhex(case["oaep_seed"]))
    assert wrapped.hex() == case["wrapped_key"]
    envelope = _testing.seal_envelope(header_of(case), data_key, bytes.fromhex(case["payload"]))
    assert envelope.hex() == case["envelope"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_opening_recovers_the_request_and_spans(case: dict) -> None:
    header, plaintext = _testing.open_envelope(bytes.fromhex(case["envelope"]), bytes.fromhex(case["data_key"]))
    want = header_of(case)
    assert header["key_id"] == case["key_id"]
    for k in (
        "flags",
        "batch_id",
        "instance_id",
        "sequence",
        "created_at_unix_nano",
        "sdk_name",
        "sdk_version",
        "wrapped_key",
        "nonce",
    ):
        assert header[k] == want[k], k
    assert header["wrapped_key_sha256"].hex() == case["wrapped_key_sha256"]
    assert plaintext.hex() == case["otlp"]

    spans = _testing.decode_otlp(plaintext)
    expect = case["expect"]
    assert len(spans) == len(expect["spans"])
    for got, exp in zip(spans, expect["spans"]):
        assert got["service_name"] == expect["service_name"]
        for k in ("trace_id", "span_id", "parent_span_id", "name", "status_message"):
            assert got[k] == exp[k], k
        for k, v in exp["attributes"].items():
            if isinstance(v, list):
                assert len(got["attributes"][k]) == len(v), k
            else:
                assert got["attributes"][k] == v, k


def test_every_tampered_envelope_is_rejected() -> None:
    checked = 0
    for case in CASES:
        data_key = bytes.fromhex(case["data_key"])
        for t in case["tampered"]:
            with pytest.raises(tracex.EnvelopeError) as e:
                _testing.open_envelope(bytes.fromhex(t["envelope"]), data_key)
            assert e.value.code in {"TRACEX_OPEN_FAILED", "TRACEX_MALFORMED_ENVELOPE", "TRACEX_UNSUPPORTED_VERSION"}
            checked += 1
    assert checked >= 30
