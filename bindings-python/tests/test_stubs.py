"""The checked-in stubs match the built module: every public name (and method) in _native.pyi
exists at runtime and vice versa; the package ships py.typed. (scripts/test-python.sh also runs
mypy's stubtest over the package.)"""

from __future__ import annotations

import ast
import importlib.resources
import inspect

import tracex
from tracex import _native


def stub_tree() -> ast.Module:
    return ast.parse((importlib.resources.files("tracex") / "_native.pyi").read_text())


def public(names) -> set[str]:
    return {n for n in names if not n.startswith("_") or n in {"__enter__", "__exit__", "__aenter__", "__aexit__"}}


def test_py_typed_is_shipped() -> None:
    assert (importlib.resources.files("tracex") / "py.typed").is_file()


def test_module_names_match() -> None:
    tree = stub_tree()
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    aliases = {"AttributeValue", "SpanKind", "StatusCode", "__all__"}  # typing-only
    assert public(stubbed) - aliases == public(dir(_native))


def test_class_members_match() -> None:
    for node in stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        runtime = getattr(_native, node.name)
        stubbed = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} - {"__new__"}
        own = {n for n, _ in inspect.getmembers(runtime) if n in runtime.__dict__}
        assert public(stubbed) == public(own) - {"__init__"}, node.name


def test_package_exports_exist() -> None:
    for name in tracex.__all__:
        assert hasattr(tracex, name), name
