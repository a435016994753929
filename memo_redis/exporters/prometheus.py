"""Prometheus exposition of :mod:`memo_redis.metrics` (extra ``prometheus``: prometheus_client).

One line serves them over HTTP on a private registry::

    from memo_redis.metrics import start_prometheus_exporter
    server, port = start_prometheus_exporter(9464)        # http://127.0.0.1:9464/metrics

or add the collector to the registry your application already exposes::

    from prometheus_client import REGISTRY
    from memo_redis.metrics import MemoRedisCollector
    REGISTRY.register(MemoRedisCollector())

Series (labels ``function`` and ``category`` on all of them):

* ``memo_redis_calls_total{result="hit|l1_hit|miss|error"}``
* ``memo_redis_stores_total``, ``memo_redis_refused_stores_total``,
  ``memo_redis_bytes_stored_total``
* ``memo_redis_flight_waits_total``, ``memo_redis_flight_wait_seconds_total``
* ``memo_redis_early_refreshes_total``, ``memo_redis_invalidations_total``
* ``memo_redis_latency_seconds{phase="lookup|compute"}``: a histogram (buckets from 10 us to
  10 s, :data:`memo_redis.metrics.BUCKETS`)

The collector reads the registry at scrape time: recording costs nothing more for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .. import metrics

__all__ = ["MemoRedisCollector", "start_prometheus_exporter"]

_LABELS = ["function", "category"]
_RESULTS = (("hit", "hits"), ("l1_hit", "l1_hits"), ("miss", "misses"), ("error", "errors"))
_COUNTERS = (
    ("memo_redis_stores", "Results stored in Redis.", "stores"),
    ("memo_redis_refused_stores", "Stores refused because an invalidation happened meanwhile.",
     "refused_stores"),
    ("memo_redis_bytes_stored", "Bytes of the values stored.", "bytes_stored"),
    ("memo_redis_flight_waits", "Calls that waited for another caller's computation.",
     "flight_waits"),
    ("memo_redis_early_refreshes", "Entries refreshed before their expiry.", "early_refreshes"),
    ("memo_redis_invalidations", "Invalidations done by cached functions.", "invalidations"),
)  # fmt: skip

Source = Callable[[], Mapping[str, Mapping[str, Any]]]


class MemoRedisCollector(Collector):
    """A prometheus_client collector of every function's metrics.

    ``source`` returns reports keyed like :func:`memo_redis.metrics.snapshot` (the default:
    this process). ``lambda: read_published(client)`` exports the totals of every process
    publishing to that Redis instead (see :mod:`memo_redis.exporters.published`).
    """

    def __init__(self, source: Source | None = None) -> None:
        self.source: Source = source if source is not None else metrics.snapshot

    def describe(self) -> list[Metric]:
        """No description at registration: the series are only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Build every family from the current reports."""
        reports = list(self.source().values())
        calls = CounterMetricFamily("memo_redis_calls", "Cached calls by result.",
                                    labels=[*_LABELS, "result"])
        for report in reports:
            labels = [str(report["function"]), str(report["category"])]
            for result, field in _RESULTS:
                calls.add_metric([*labels, result], report[field])
        yield calls
        for name, documentation, field in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=_LABELS)
            for report in reports:
                family.add_metric([str(report["function"]), str(report["category"])],
                                  report[field])
            yield family
        waited = CounterMetricFamily("memo_redis_flight_wait_seconds",
                                     "Time spent waiting for another caller's computation.",
                                     labels=_LABELS)
        for report in reports:
            waited.add_metric([str(report["function"]), str(report["category"])],
                              report["flight_wait_seconds"])
        yield waited
        latency = HistogramMetricFamily(
            "memo_redis_latency_seconds", "Lookup (Redis read) and compute (function) latency.",
            labels=[*_LABELS, "phase"], unit="seconds",
        )
        for report in reports:
            for phase in ("lookup", "compute"):
                hist = report[f"{phase}_seconds"]
                buckets = [("+Inf" if bound == "+Inf" else repr(float(bound)), float(count))
                           for bound, count in hist["buckets"]]
                latency.add_metric([str(report["function"]), str(report["category"]), phase],
                                   buckets, float(hist["sum"]))
        yield latency


def start_prometheus_exporter(
    port: int = 0, addr: str = "127.0.0.1", *, registry: CollectorRegistry | None = None,
    source: Source | None = None,
) -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP from a daemon thread; returns ``(server, port)``.

    ``port=0`` picks a free port (the one returned). Without ``registry`` a private registry
    holding only memo_redis's collector is served (so it cannot clash with an application's
    own); pass one to serve it instead (the collector is then added to it). Stop with
    ``server.shutdown(); server.server_close()``.
    """
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
    registry.register(MemoRedisCollector(source))
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, int(server.server_address[1])
