# Type stubs for the native module (bindings-python/src). Checked against the built module by
# mypy's stubtest in scripts/test-python.sh: keep in step with the #[pymethods].
import contextvars
import os
from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Optional, Union, final

from typing_extensions import Self, TypeAlias, disjoint_base

__all__ = [
    "__version__",
    "Tracer",
    "FlushReport",
    "Span",
    "SpanContext",
    "Ready",
    "current_span",
    "_CURRENT_SPAN",
    "Receipt",
    "Checkpoint",
    "verify_receipt",
    "verify_inclusion",
    "verify_consistency",
    "open_checkpoint",
]

__version__: str

AttributeValue: TypeAlias = Union[
    str, bool, int, float, bytes, Sequence["AttributeValue"], Mapping[str, "AttributeValue"]
]
SpanKind: TypeAlias = Literal["internal", "server", "client", "producer", "consumer"]
StatusCode: TypeAlias = Literal["ok", "error", "unset"]

_CURRENT_SPAN: contextvars.ContextVar[Optional[Span]]

def current_span() -> Optional[Span]:
    """The current span (innermost ``with tracer.span(...)`` of this thread or task), or None."""

@disjoint_base
class Tracer:
    def __new__(
        cls,
        *,
        endpoint: Optional[str] = None,
        api_key: Optional[str] = None,
        service_name: Optional[str] = None,
        service_version: Optional[str] = None,
        environment: Optional[str] = None,
        collector_public_key: Optional[str] = None,
        collector_fingerprint: Optional[str] = None,
        audit_key: Optional[str] = None,
        sample_ratio: Optional[float] = None,
        spool_dir: Optional[Union[str, os.PathLike[str]]] = None,
        spool_max_bytes: Optional[int] = None,
        resource_attributes: Optional[Mapping[str, AttributeValue]] = None,
        operator_id: Optional[str] = None,
        operator_role: Optional[str] = None,
        max_queue_size: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        scheduled_delay: Optional[float] = None,
        retry_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
        compression: bool = False,
    ) -> Self: ...
    def span(
        self,
        name: str,
        *,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        parent: Optional[Union[Span, SpanContext]] = None,
        root: bool = False,
        kind: Optional[SpanKind] = None,
        start_time: Optional[int] = None,
    ) -> Span:
        """A new span, child of ``parent`` (default: the current span). ``with`` makes it current
        and ends it (recording an escaping exception)."""
    def start_span(
        self,
        name: str,
        *,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        parent: Optional[Union[Span, SpanContext]] = None,
        root: bool = False,
        kind: Optional[SpanKind] = None,
        start_time: Optional[int] = None,
    ) -> Span:
        """A new span that is not made current; end it with ``span.end()``."""
    def flush(self, timeout: float = 5.0) -> FlushReport:
        """Delivers what was recorded so far, waiting at most ``timeout`` seconds (GIL released)."""
    def shutdown(self, timeout: float = 5.0) -> FlushReport:
        """Stops accepting spans and delivers what is buffered (GIL released); raises
        ``ShutdownError`` when called again."""
    def stats(self) -> dict[str, int]: ...
    @property
    def collector_fingerprint(self) -> str: ...
    def _after_fork_in_child(self) -> None: ...

@final
class Span:
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...
    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None: ...
    def add_event(
        self, name: str, attributes: Optional[Mapping[str, AttributeValue]] = None, *, timestamp: Optional[int] = None
    ) -> None: ...
    def add_link(
        self, context: Union[Span, SpanContext], attributes: Optional[Mapping[str, AttributeValue]] = None
    ) -> None: ...
    def record_exception(self, exception: BaseException) -> None: ...
    def set_status(self, status: StatusCode, description: Optional[str] = None) -> None: ...
    def update_name(self, name: str) -> None: ...
    def end(self, end_time: Optional[int] = None) -> None: ...
    @property
    def is_recording(self) -> bool: ...
    @property
    def context(self) -> SpanContext: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def traceparent(self) -> str: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
        /,
    ) -> bool: ...
    def __aenter__(self) -> Ready: ...
    def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
        /,
    ) -> Ready: ...

@final
class Ready:
    """An awaitable that is already complete (what ``__aenter__``/``__aexit__`` return)."""
    def __await__(self) -> Generator[Any, None, Any]: ...
    def __iter__(self) -> Ready: ...
    def __next__(self) -> None: ...

@final
class SpanContext:
    @staticmethod
    def from_traceparent(traceparent: str, tracestate: Optional[str] = None) -> SpanContext: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def sampled(self) -> bool: ...
    @property
    def is_remote(self) -> bool: ...
    @property
    def trace_state(self) -> Optional[str]: ...
    @property
    def traceparent(self) -> str: ...

@final
class FlushReport:
    @property
    def spans_delivered(self) -> int: ...
    @property
    def spans_spooled(self) -> int: ...
    @property
    def spans_failed(self) -> int: ...
    @property
    def spans_pending(self) -> int: ...
    @property
    def spans_dropped(self) -> int: ...
    @property
    def complete(self) -> bool: ...
    def __bool__(self) -> bool: ...

@final
class Receipt:
    """A receipt that verified: the batch ``batch_id`` (hex) is leaf ``leaf_index`` of the log ``origin``."""
    @property
    def origin(self) -> str: ...
    @property
    def leaf_index(self) -> int: ...
    @property
    def batch_id(self) -> str: ...
    @property
    def envelope_sha256(self) -> str: ...
    @property
    def received_at_unix_nano(self) -> int: ...
    def __repr__(self) -> str: ...

@final
class Checkpoint:
    """A checkpoint that verified: the log ``origin`` had ``size`` leaves with root ``root_hash`` (hex)."""
    @property
    def origin(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def root_hash(self) -> str: ...
    @property
    def signed_at_unix_nano(self) -> Optional[int]:
        """When the collector signed it, unix nanoseconds; None for a checkpoint without a time line."""
    def __repr__(self) -> str: ...

def verify_receipt(note: str, verifier_key: str, batch_id: str, envelope_sha256: str) -> Receipt:
    """Verifies a batch's receipt signed by ``verifier_key`` for that batch id and envelope hash (hex)."""

def verify_inclusion(leaf_hash: str, index: int, size: int, proof: Sequence[str], root: str) -> None:
    """Checks that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root`` (hex)."""

def verify_consistency(old_size: int, new_size: int, old_root: str, new_root: str, proof: Sequence[str]) -> None:
    """Checks that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` leaves."""

def open_checkpoint(note: str, verifier_key: str) -> Checkpoint:
    """Verifies a checkpoint signed by ``verifier_key`` for the log named as the key."""
