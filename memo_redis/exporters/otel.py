"""OpenTelemetry instruments for :mod:`memo_redis.metrics` (extra ``otel``: opentelemetry-api).

::

    from memo_redis.metrics import instrument_opentelemetry
    instrument_opentelemetry()                      # the global MeterProvider
    instrument_opentelemetry(provider, spans=True)  # also spans around misses, invalidations

Instruments (attributes ``function`` and ``category`` on all of them), all *observable*: they
are read from the registry when the SDK collects, so recording a call costs nothing more:

* ``memo_redis.calls`` (attribute ``result``: ``hit``, ``l1_hit``, ``miss``, ``error``)
* ``memo_redis.stores``, ``memo_redis.refused_stores``, ``memo_redis.bytes_stored`` (By)
* ``memo_redis.flight_waits``, ``memo_redis.flight_wait.time`` (s),
  ``memo_redis.early_refreshes``, ``memo_redis.invalidations``
* latency, attribute ``phase`` (``lookup`` or ``compute``): ``memo_redis.latency.count``,
  ``memo_redis.latency.sum`` (s) and ``memo_redis.latency.bucket`` (attribute ``le``: the
  bucket's upper bound in seconds, cumulative counts; ``+Inf`` last), the Prometheus form of a
  histogram. The OpenTelemetry API has no asynchronous histogram, and feeding a synchronous
  one would put an SDK call on every cached call.

The SDK (``opentelemetry-sdk``) is the application's choice; memo_redis needs only the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from .. import metrics, tracing

__all__ = ["OpenTelemetryInstrumentation", "instrument_opentelemetry"]

_VERSION = "0.1.0"
_RESULTS = (("hit", "hits"), ("l1_hit", "l1_hits"), ("miss", "misses"), ("error", "errors"))
_COUNTERS = (
    ("memo_redis.stores", "stores", "{store}", "Results stored in Redis."),
    ("memo_redis.refused_stores", "refused_stores", "{store}",
     "Stores refused because an invalidation happened meanwhile."),
    ("memo_redis.bytes_stored", "bytes_stored", "By", "Bytes of the values stored."),
    ("memo_redis.flight_waits", "flight_waits", "{call}",
     "Calls that waited for another caller's computation."),
    ("memo_redis.early_refreshes", "early_refreshes", "{refresh}",
     "Entries refreshed before their expiry."),
    ("memo_redis.invalidations", "invalidations", "{invalidation}",
     "Invalidations done by cached functions."),
)  # fmt: skip

Callback = Callable[[CallbackOptions], Iterable[Observation]]


@dataclass
class OpenTelemetryInstrumentation:
    """What :func:`instrument_opentelemetry` set up; :meth:`close` stops reporting."""

    meter: Any
    instruments: list[Any] = field(default_factory=list)
    active: bool = True

    def close(self) -> None:
        """Report nothing more from these instruments and turn spans off."""
        self.active = False
        tracing.set_tracer(None)


def _attrs(m: metrics.FunctionMetrics, **extra: str) -> dict[str, str]:
    return {"function": m.function, "category": m.category, **extra}


def instrument_opentelemetry(
    meter_provider: MeterProvider | None = None, *, spans: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> OpenTelemetryInstrumentation:
    """Create memo_redis's observable instruments on a meter of ``meter_provider`` (the global
    provider when ``None``). With ``spans=True``, :func:`memo_redis.metrics.span` opens real
    spans from a tracer of ``tracer_provider`` (the global one when ``None``).

    Call it once per provider: each call creates another set of instruments.
    """
    meter = otel_metrics.get_meter("memo_redis", _VERSION, meter_provider=meter_provider)
    handle = OpenTelemetryInstrumentation(meter)

    def functions() -> list[metrics.FunctionMetrics]:
        return metrics.functions() if handle.active else []

    def calls(options: CallbackOptions) -> Iterator[Observation]:
        for m in functions():
            for result, name in _RESULTS:
                yield Observation(getattr(m, name), _attrs(m, result=result))

    def counter(name: str) -> Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for m in functions():
                yield Observation(getattr(m, name), _attrs(m))
        return observe

    def wait_time(options: CallbackOptions) -> Iterator[Observation]:
        for m in functions():
            yield Observation(m.flight_wait_seconds, _attrs(m))

    def latency(part: str) -> Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for m in functions():
                for phase, buckets, sum_ns in (
                    ("lookup", list(m.lookup_buckets), m.lookup_sum_ns),
                    ("compute", list(m.compute_buckets), m.compute_sum_ns),
                ):
                    if not any(buckets):
                        # Nothing observed yet: no series (keeps within the SDK's cardinality
                        # limit when many functions are registered but few are timed).
                        continue
                    if part == "count":
                        yield Observation(sum(buckets), _attrs(m, phase=phase))
                    elif part == "sum":
                        yield Observation(sum_ns / 1e9, _attrs(m, phase=phase))
                    else:
                        running = 0
                        for bound, n in zip((*metrics.BUCKETS, "+Inf"), buckets, strict=True):
                            running += n
                            yield Observation(running, _attrs(m, phase=phase, le=str(bound)))
        return observe

    add = handle.instruments.append
    add(meter.create_observable_counter("memo_redis.calls", [calls], "{call}",
                                        "Cached calls by result."))
    for name, source, unit, description in _COUNTERS:
        add(meter.create_observable_counter(name, [counter(source)], unit, description))
    add(meter.create_observable_counter("memo_redis.flight_wait.time", [wait_time], "s",
                                        "Time spent waiting for another caller's computation."))
    for part, unit in (("count", "{call}"), ("sum", "s"), ("bucket", "{call}")):
        add(meter.create_observable_counter(
            f"memo_redis.latency.{part}", [latency(part)], unit,
            f"Lookup and compute latency histogram ({part}).",
        ))
    if spans:
        tracing.set_tracer(trace.get_tracer("memo_redis", _VERSION,
                                             tracer_provider=tracer_provider))
    return handle
