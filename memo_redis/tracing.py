"""Tracing spans around cache misses and invalidations, OpenTelemetry when switched on.

:func:`span` is what the decorators call; it returns a shared no-op context manager until
:func:`memo_redis.metrics.instrument_opentelemetry` runs with ``spans=True`` (which needs the
``otel`` extra), so tracing costs one global read when off.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

__all__ = ["set_tracer", "span"]


class _NoSpan(AbstractContextManager[None]):
    """The span used when tracing is off: does nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()
_tracer: Any = None


def span(name: str, **attrs: Any) -> AbstractContextManager[Any]:
    """A tracing span around a miss or an invalidation: an OpenTelemetry span once
    :func:`memo_redis.metrics.instrument_opentelemetry` ran with ``spans=True``, else a shared
    no-op.

    Attribute values other than str, bool, int and float are passed as their ``str()``.
    """
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    clean = {k: v if isinstance(v, (str, bool, int, float)) else str(v)
             for k, v in attrs.items() if v is not None}
    manager: AbstractContextManager[Any] = tracer.start_as_current_span(name, attributes=clean)
    return manager


def set_tracer(tracer: Any) -> None:
    """Install (or with ``None`` remove) the tracer :func:`span` uses."""
    global _tracer
    _tracer = tracer
