"""The released wheel carries no test-only code: this runs against each release wheel (never the test
build) and checks that `_native._testing` and the functions behind it are absent — from the module
and from the compiled library itself."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracex
from tracex import _native

pytestmark = pytest.mark.release_build

TEST_ONLY = [b"seal_envelope", b"open_envelope", b"decode_otlp", b"raise_core_error", b"root_sampled"]


def test_the_native_module_has_no_testing_submodule() -> None:
    assert not hasattr(_native, "_testing")
    with pytest.raises(ImportError):
        __import__("tracex._native._testing")


def test_the_compiled_library_has_no_test_only_functions() -> None:
    lib = Path(_native.__file__).read_bytes()
    assert len(lib) > 100_000
    # pyo3 registers functions by name: a test-only function would leave its name in the binary.
    for name in TEST_ONLY:
        assert lib.find(name) == -1, name
    assert tracex.__file__ is not None
