"""Verifying the collector's audit trail (docs/audit.md): receipts, inclusion and consistency proofs,
checkpoints. Hashes and ids are hex strings; every check that fails, and every malformed input,
raises :class:`tracex.AuditError` (code ``TRACEX_AUDIT``).

>>> from tracex import audit
>>> receipt = audit.verify_receipt(ack["receipt"], AUDIT_KEY, batch_id_hex, envelope_sha256_hex)  # doctest: +SKIP
>>> receipt.leaf_index  # doctest: +SKIP
41

The work is the core's (``tracex_core::audit``), the same code the Node and WASM packages run.
"""

from __future__ import annotations

from ._native import Checkpoint, Receipt, open_checkpoint, verify_consistency, verify_inclusion, verify_receipt

__all__ = ["Receipt", "Checkpoint", "verify_receipt", "verify_inclusion", "verify_consistency", "open_checkpoint"]
