"""tracex: end-to-end encrypted tracing for services that move money.

>>> import tracex
>>> tracer = tracex.Tracer(service_name="settler")          # endpoint, key, … from TRACEX_* env vars
>>> with tracer.span("settle", attributes={"x402.network": "base"}) as span:
...     span.set_attribute("x402.amount", "10000")

Spans, the tracer and all conversion are native (``tracex._native``, over the Rust core); this
module only adds Python idiom: the ``trace`` decorator, ``inject``/``extract`` for HTTP headers,
flushing at interpreter exit, and restarting the tracer in a forked child.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import sys
import weakref
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union, overload

from . import _native, audit
from ._errors import (
    AuditError,
    ConfigError,
    EnvelopeError,
    FingerprintMismatchError,
    FlushTimeoutError,
    InvalidContextError,
    InvalidRecordsError,
    PublicKeyError,
    RejectedError,
    SealError,
    ShutdownError,
    SpoolError,
    TracexError,
    TransportError,
)
from ._native import FlushReport, Span, SpanContext, current_span

if TYPE_CHECKING:
    from ._native import AttributeValue, SpanKind

__version__: str = _native.__version__

__all__ = [
    "Tracer",
    "Span",
    "SpanContext",
    "FlushReport",
    "current_span",
    "inject",
    "extract",
    "TracexError",
    "ConfigError",
    "PublicKeyError",
    "FingerprintMismatchError",
    "InvalidContextError",
    "EnvelopeError",
    "SealError",
    "TransportError",
    "RejectedError",
    "ShutdownError",
    "FlushTimeoutError",
    "SpoolError",
    "InvalidRecordsError",
    "AuditError",
    "audit",
]

F = TypeVar("F", bound=Callable[..., Any])

#: How long the interpreter waits at exit for buffered spans to be delivered (seconds).
EXIT_TIMEOUT: float = 5.0

_tracers: weakref.WeakSet[Tracer] = weakref.WeakSet()


class Tracer(_native.Tracer):
    """Records spans and delivers them, sealed, to your collector.

    Every option is keyword-only and falls back to an environment variable (``TRACEX_ENDPOINT``,
    ``TRACEX_API_KEY``, ``TRACEX_SERVICE_NAME``, ``TRACEX_COLLECTOR_PUBLIC_KEY`` (PEM or a path),
    ``TRACEX_COLLECTOR_FINGERPRINT``, ``TRACEX_SAMPLE_RATIO``, ``TRACEX_SPOOL_DIR``, …). Invalid
    options raise :class:`ConfigError` (a ``ValueError``) here, never later.

    ``audit_key`` pins the collector's audit key (``TRACEX_AUDIT_KEY``; its verifier key as
    ``GET /v1/audit-key`` serves it, compared out of band): every acknowledgement's receipt is then
    verified and counted in ``stats()["receipts_verified"]`` or ``stats()["receipts_failed"]``.

    A tracer delivers what is still buffered when the interpreter exits, and keeps working in a
    child process after ``os.fork()`` (the child gets its own worker; spans buffered in the parent
    at the fork are delivered by the parent only).
    """

    def __init__(
        self,
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
        resource_attributes: Optional[Mapping[str, Any]] = None,
        operator_id: Optional[str] = None,
        operator_role: Optional[str] = None,
        max_queue_size: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        scheduled_delay: Optional[float] = None,
        retry_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
        compression: bool = False,
    ) -> None:
        # The options were consumed by the native constructor (``__new__``); this only registers
        # the tracer for the exit flush and the fork hook.
        _tracers.add(self)

    @overload
    def trace(self, fn: F, /) -> F: ...
    @overload
    def trace(
        self,
        name: Optional[str] = None,
        /,
        *,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        kind: Optional[SpanKind] = None,
    ) -> Callable[[F], F]: ...
    def trace(
        self,
        fn: Any = None,
        /,
        *,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        kind: Optional[SpanKind] = None,
    ) -> Any:
        """Decorator: runs each call of a function (sync or ``async``) in a span named after it.

        ``@tracer.trace``, ``@tracer.trace("name")`` or ``@tracer.trace(attributes={...})``. An
        exception escaping the function is recorded on the span and re-raised.
        """
        name = fn if isinstance(fn, str) else None

        def decorate(f: F) -> F:
            span_name = name or f.__qualname__
            if inspect.iscoroutinefunction(f):

                @functools.wraps(f)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    with self.span(span_name, attributes=attributes, kind=kind):
                        return await f(*args, **kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(f)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.span(span_name, attributes=attributes, kind=kind):
                    return f(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        if fn is None or isinstance(fn, str):
            return decorate
        if not callable(fn):
            raise TypeError("tracer.trace decorates a function, or takes a span name")
        return decorate(fn)


def inject(
    headers: Optional[MutableMapping[str, str]] = None,
    *,
    span: Optional[Union[Span, SpanContext]] = None,
) -> MutableMapping[str, str]:
    """Writes ``traceparent`` (and ``tracestate``) for ``span`` (default: the current span) into
    ``headers`` (a new dict when omitted) and returns them. Without a span, nothing is written."""
    if headers is None:
        headers = {}
    cx: Optional[SpanContext]
    if span is None:
        current = current_span()
        cx = current.context if current is not None else None
    elif isinstance(span, Span):
        cx = span.context
    else:
        cx = span
    if cx is not None:
        headers["traceparent"] = cx.traceparent
        if cx.trace_state:
            headers["tracestate"] = cx.trace_state
    return headers


def extract(headers: Mapping[str, Any]) -> Optional[SpanContext]:
    """The remote parent from incoming ``traceparent``/``tracestate`` headers (names are matched
    case-insensitively), usable as ``parent=``. ``None`` when absent or malformed, as W3C asks (use
    :meth:`SpanContext.from_traceparent` to get an :class:`InvalidContextError` instead)."""
    traceparent = tracestate = None
    for key, value in headers.items():
        lower = key.lower() if isinstance(key, str) else key
        if lower == "traceparent":
            traceparent = value
        elif lower == "tracestate":
            tracestate = value
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("latin-1")
    if isinstance(tracestate, bytes):
        tracestate = tracestate.decode("latin-1")
    if not isinstance(traceparent, str):
        return None
    try:
        return SpanContext.from_traceparent(traceparent, tracestate if isinstance(tracestate, str) else None)
    except InvalidContextError:
        return None


def _after_fork_in_child() -> None:
    for tracer in list(_tracers):
        try:
            tracer._after_fork_in_child()
        except Exception as e:  # a hook cannot raise; say why spans will not arrive
            print(f"tracex: the tracer could not restart in the forked child: {e}", file=sys.stderr)


def _shutdown_all() -> None:
    for tracer in list(_tracers):
        try:
            report = tracer.shutdown(timeout=EXIT_TIMEOUT)
        except ShutdownError:
            continue
        except Exception as e:
            print(f"tracex: delivering spans at exit failed: {e}", file=sys.stderr)
            continue
        if report.spans_pending or report.spans_failed or report.spans_dropped:
            print(f"tracex: at exit, not every span was delivered: {report!r}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all)
