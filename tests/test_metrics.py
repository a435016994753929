"""memo_redis.metrics: the registry, snapshots, listeners, spans, and every exporter against real
servers (Redis for the cross-process publisher, HTTP for Prometheus, the OpenTelemetry SDK's
in-memory reader). Calls are recorded directly on FunctionMetrics objects."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from memo_redis import RedisCaching, metrics
from memo_redis.exporters.published import METRICS_PREFIX, REGISTRY_KEY
from memo_redis.servers import EmbeddedServer


def _name(label: str = "fn") -> str:
    """A function name no other test uses (the registry is process-wide)."""
    return f"tests.metrics.{label}_{uuid.uuid4().hex[:8]}"


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Call ``read`` until ``done(result)`` or the deadline; return the last result."""
    deadline = time.monotonic() + timeout
    result = read()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(0.02)
        result = read()
    return result


@pytest.fixture
def events() -> Iterator[list[metrics.Event]]:
    seen: list[metrics.Event] = []
    metrics.add_listener(seen.append)
    try:
        yield seen
    finally:
        metrics.remove_listener(seen.append)


# -- registry and snapshot ---------------------------------------------------------------------


def test_register_returns_one_object_per_function_and_category() -> None:
    name = _name()
    m = metrics.register(name, "data")
    assert metrics.register(name, "data") is m
    assert metrics.get(name, "data") is m
    assert metrics.register(name, "count") is not m
    assert metrics.get(_name(), "data") is None
    assert m in metrics.functions()
    with pytest.raises(ValueError, match="function must be a non-empty str"):
        metrics.register("", "data")


def test_snapshot_counts_every_recorder_and_is_json_serializable() -> None:
    name = _name()
    m = metrics.register(name, "data")
    m.hit(lookup_ns=40_000)            # 40 us: bucket le=5e-05
    m.hit(lookup_ns=40_000)
    m.hit()                            # not timed
    m.l1_hit()
    m.miss(lookup_ns=2_000_000)        # 2 ms: bucket le=0.0025
    m.computed(300_000_000)            # 300 ms
    m.store(nbytes=120)
    m.store(nbytes=80)
    m.refused_store()
    m.error()
    m.wait(5_000_000)
    m.early_refresh()
    m.invalidate("sql:users:*")
    snap = json.loads(json.dumps(metrics.snapshot()))[f"{name}:data"]
    assert snap["function"] == name and snap["category"] == "data"
    assert (snap["hits"], snap["l1_hits"], snap["misses"], snap["errors"]) == (3, 1, 1, 1)
    assert (snap["stores"], snap["refused_stores"], snap["bytes_stored"]) == (2, 1, 200)
    assert (snap["flight_waits"], snap["early_refreshes"], snap["invalidations"]) == (1, 1, 1)
    assert snap["flight_wait_seconds"] == pytest.approx(0.005)
    assert snap["calls"] == 6
    assert snap["hit_ratio"] == pytest.approx(4 / 5)
    lookup = snap["lookup_seconds"]
    assert lookup["count"] == 3
    assert lookup["sum"] == pytest.approx(0.00208)
    buckets = dict((str(bound), n) for bound, n in lookup["buckets"])
    assert buckets["2.5e-05"] == 0 and buckets["5e-05"] == 2 and buckets["0.001"] == 2
    assert buckets["0.0025"] == 3 and buckets["+Inf"] == 3
    assert 2.5e-05 < lookup["p50"] <= 5e-05
    assert 0.001 < lookup["p99"] <= 0.0025
    compute = snap["compute_seconds"]
    assert compute["count"] == 1 and 0.25 < compute["p50"] <= 0.5


def test_histogram_edges_and_overflow() -> None:
    m = metrics.register(_name(), "data")
    m.hit(lookup_ns=10_000)               # exactly the first bound: le=1e-05 is inclusive
    m.computed(60_000_000_000)            # 60 s: only +Inf
    summary = m.summary()
    assert summary["lookup_seconds"]["buckets"][0] == [1e-05, 1]
    assert summary["compute_seconds"]["buckets"][-2] == [10.0, 0]
    assert summary["compute_seconds"]["buckets"][-1] == ["+Inf", 1]
    assert summary["compute_seconds"]["p99"] == 10.0
    empty = metrics.register(_name(), "data").summary()["lookup_seconds"]
    assert empty["count"] == 0 and empty["p50"] is None and empty["mean"] is None


def test_reset_zeroes_counts_and_keeps_registrations() -> None:
    m = metrics.register(_name(), "data")
    m.hit(lookup_ns=1000)
    m.store(nbytes=10)
    metrics.reset()
    assert metrics.get(m.function, "data") is m
    assert m.hits == m.stores == m.bytes_stored == 0
    assert m.summary()["lookup_seconds"]["count"] == 0
    m.hit()
    assert m.hits == 1


def test_set_enabled_false_turns_recorders_into_no_ops() -> None:
    m = metrics.register(_name(), "data")
    try:
        metrics.set_enabled(False)
        assert not metrics.enabled()
        late = metrics.register(_name(), "data")
        for recorder in (m, late):
            recorder.hit(5)
            recorder.l1_hit()
            recorder.miss()
            recorder.store(10)
            recorder.error()
        assert m.hits == m.l1_hits == m.misses == m.stores == m.errors == 0
        assert late.hits == 0
    finally:
        metrics.set_enabled(True)
    m.hit()
    late.hit()
    assert m.hits == 1 and late.hits == 1


# -- listeners ----------------------------------------------------------------------------------


def test_listeners_receive_frozen_events(events: list[metrics.Event]) -> None:
    name = _name()
    m = metrics.register(name, "data")
    m.hit(lookup_ns=250_000, key="sql:users:data:1")
    m.l1_hit(key="sql:users:data:1")
    m.miss(key="k2")
    m.store(nbytes=64, key="k2")
    m.refused_store(key="k3")
    m.error()
    m.wait(1_000_000, key="k4")
    m.early_refresh(key="k5")
    m.invalidate("sql:users:*")
    mine = [e for e in events if e.function == name]
    assert [e.kind for e in mine] == [
        "hit", "l1_hit", "miss", "store", "refused_store", "error", "wait", "early_refresh",
        "invalidate",
    ]
    assert {e.kind for e in mine} == metrics.KINDS
    assert mine[0] == metrics.Event(name, "data", "hit", 0.00025, "sql:users:data:1")
    assert mine[2].duration is None
    assert mine[3].size == 64
    assert mine[6].duration == pytest.approx(0.001)
    assert mine[8].key == "sql:users:*"
    with pytest.raises(AttributeError):
        mine[0].kind = "miss"  # type: ignore[misc]


def test_no_event_is_built_without_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise AssertionError("an event was built with no listener registered")

    monkeypatch.setattr(metrics, "_listeners", ())
    monkeypatch.setattr(metrics, "_emit", explode)
    m = metrics.register(_name(), "data")
    m.hit(lookup_ns=1)
    m.l1_hit()
    m.miss()
    m.store(1)
    m.wait(1)
    assert m.hits == 1


def test_removed_listener_stops_and_a_failing_one_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[metrics.Event] = []
    calls = 0

    def broken(event: metrics.Event) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("listener bug")

    metrics.add_listener(broken)
    metrics.add_listener(seen.append)
    m = metrics.register(_name(), "data")
    try:
        with caplog.at_level(logging.ERROR, logger="memo_redis.metrics"):
            m.hit()
            m.hit()
        assert calls == 2 and len([e for e in seen if e.function == m.function]) == 2
        assert sum("listener" in r.getMessage() for r in caplog.records) == 1
    finally:
        metrics.remove_listener(broken)
        metrics.remove_listener(seen.append)
    m.hit()
    assert calls == 2 and len([e for e in seen if e.function == m.function]) == 2
    metrics.remove_listener(broken)  # removing twice is harmless
    with pytest.raises(TypeError):
        metrics.add_listener("not callable")  # type: ignore[arg-type]


# -- cross-process publisher --------------------------------------------------------------------


def test_publisher_writes_deltas_and_read_published_sums_them(cache: RedisCaching) -> None:
    name = _name("published")
    m = metrics.register(name, "data")
    m.hit(lookup_ns=30_000)
    m.hit(lookup_ns=30_000)
    m.miss(lookup_ns=900_000)
    m.store(nbytes=100)
    ident = f"{name}:data"
    with metrics.RedisMetricsPublisher(cache, interval=0.05) as publisher:
        assert publisher.running
        got = _poll(lambda: metrics.read_published(cache.client),
                    lambda r: r.get(ident, {}).get("hits") == 2)
        entry = got[ident]
        assert (entry["hits"], entry["misses"], entry["stores"]) == (2, 1, 1)
        assert entry["bytes_stored"] == 100 and entry["lookup_seconds"]["count"] == 3
        assert entry["function"] == name and entry["category"] == "data"
        assert entry["first_ms"] <= entry["updated_ms"]
        m.hit(lookup_ns=30_000)
        m.l1_hit()
        got = _poll(lambda: metrics.read_published(cache.client),
                    lambda r: r[ident]["hits"] == 3 and r[ident]["l1_hits"] == 1)
        assert got[ident]["hits"] == 3 and got[ident]["misses"] == 1  # deltas, not totals
    assert not publisher.running
    ttl = cache.client.ttl(METRICS_PREFIX + ident)
    assert 0 < ttl <= publisher.ttl
    assert 0 < cache.client.ttl(REGISTRY_KEY) <= publisher.ttl
    # bookkeeping keys: an invalidation of everything leaves them alone
    cache.invalidate("*")
    assert metrics.read_published(cache.client)[ident]["hits"] == 3


_OTHER_PROCESS = """
import sys
from memo_redis import RedisCaching, metrics
m = metrics.register(sys.argv[2], "data")
for _ in range(5):
    m.hit(lookup_ns=20_000)
m.miss()
metrics.RedisMetricsPublisher(RedisCaching(sys.argv[1]), interval=60).stop()
"""


def test_publishers_of_two_processes_add_up(cache: RedisCaching, server: EmbeddedServer) -> None:
    name = _name("shared")
    publisher = metrics.RedisMetricsPublisher(cache.client, interval=60)
    m = metrics.register(name, "data")
    m.hit(lookup_ns=20_000)
    m.hit(lookup_ns=20_000)
    assert publisher.flush() >= 1
    subprocess.run([sys.executable, "-c", _OTHER_PROCESS, server.url, name], check=True,
                   timeout=60)
    entry = metrics.read_published(cache)[f"{name}:data"]
    assert (entry["hits"], entry["misses"]) == (7, 1)
    assert entry["hit_ratio"] == pytest.approx(7 / 8)
    assert publisher.flush() == 0  # nothing new: nothing sent


_EXITING_PROCESS = """
import sys
from memo_redis import RedisCaching, metrics
metrics.RedisMetricsPublisher(RedisCaching(sys.argv[1]), interval=3600).start()
metrics.register(sys.argv[2], "data").miss()
"""


def test_a_started_publisher_flushes_at_interpreter_exit(
        cache: RedisCaching, server: EmbeddedServer) -> None:
    name = _name("atexit")
    subprocess.run([sys.executable, "-c", _EXITING_PROCESS, server.url, name], check=True,
                   timeout=60)
    assert metrics.read_published(cache)[f"{name}:data"]["misses"] == 1


def test_publisher_counts_again_after_reset(cache: RedisCaching) -> None:
    name = _name()
    m = metrics.register(name, "data")
    publisher = metrics.RedisMetricsPublisher(cache.client, interval=60)
    for _ in range(5):
        m.hit()
    publisher.flush()
    metrics.reset()
    m.hit()
    publisher.flush()
    assert metrics.read_published(cache.client)[f"{name}:data"]["hits"] == 6


def test_publisher_keeps_deltas_while_redis_is_unreachable(
        cache: RedisCaching, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = redis.Redis(port=dead_port, socket_connect_timeout=0.5, socket_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))
    name = _name()
    m = metrics.register(name, "data")
    m.hit()
    publisher = metrics.RedisMetricsPublisher(dead, interval=0.05).start()
    with caplog.at_level(logging.WARNING, logger="memo_redis.metrics"):
        _poll(lambda: len(caplog.records), lambda n: n > 0, timeout=5)
        publisher.stop()  # its last flush fails too: no exception
    assert sum("cannot publish" in r.getMessage() for r in caplog.records) == 1
    publisher.client = cache.client  # Redis is back: the unsent deltas go now
    publisher.flush()
    assert metrics.read_published(cache.client)[f"{name}:data"]["hits"] == 1


def test_read_published_is_empty_without_publishers(cache: RedisCaching) -> None:
    assert metrics.read_published(cache.client) == {}
    with pytest.raises(ValueError):
        metrics.RedisMetricsPublisher(cache.client, interval=0)
    with pytest.raises(TypeError):
        metrics.RedisMetricsPublisher(object())


# -- Prometheus ---------------------------------------------------------------------------------


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_prometheus_exporter_serves_the_expected_series() -> None:
    name = _name("prom")
    m = metrics.register(name, "data")
    for _ in range(3):
        m.hit(lookup_ns=40_000)
    m.l1_hit()
    m.miss(lookup_ns=3_000_000)
    m.computed(20_000_000)
    m.store(nbytes=512)
    m.refused_store()
    m.wait(2_000_000)
    server, port = metrics.start_prometheus_exporter(port=0)
    try:
        assert port > 0
        samples = _scrape(port)
        fn = (("category", "data"), ("function", name))

        def value(series: str, **labels: str) -> float:
            return samples[(series, tuple(sorted((*fn, *labels.items()))))]

        assert value("memo_redis_calls_total", result="hit") == 3
        assert value("memo_redis_calls_total", result="l1_hit") == 1
        assert value("memo_redis_calls_total", result="miss") == 1
        assert value("memo_redis_calls_total", result="error") == 0
        assert value("memo_redis_stores_total") == 1
        assert value("memo_redis_refused_stores_total") == 1
        assert value("memo_redis_bytes_stored_total") == 512
        assert value("memo_redis_flight_waits_total") == 1
        assert value("memo_redis_flight_wait_seconds_total") == pytest.approx(0.002)
        assert value("memo_redis_latency_seconds_count", phase="lookup") == 4
        assert value("memo_redis_latency_seconds_bucket", phase="lookup", le="5e-05") == 3
        assert value("memo_redis_latency_seconds_bucket", phase="lookup", le="+Inf") == 4
        assert value("memo_redis_latency_seconds_sum", phase="lookup") == pytest.approx(0.00312)
        assert value("memo_redis_latency_seconds_count", phase="compute") == 1
        # counts grow between scrapes: the collector reads the registry each time
        m.hit(lookup_ns=40_000)
        assert _scrape(port)[("memo_redis_calls_total",
                              tuple(sorted((*fn, ("result", "hit")))))] == 4
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_collector_can_export_the_published_totals(cache: RedisCaching) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    name = _name("central")
    metrics.register(name, "data").hit()
    metrics.RedisMetricsPublisher(cache.client, interval=60).flush()
    registry = CollectorRegistry()
    registry.register(metrics.MemoRedisCollector(lambda: metrics.read_published(cache.client)))
    text = generate_latest(registry).decode()
    assert f'memo_redis_calls_total{{category="data",function="{name}",result="hit"}} 1.0' in text


# -- OpenTelemetry ------------------------------------------------------------------------------


def test_opentelemetry_instruments_read_by_the_in_memory_reader() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    handle = metrics.instrument_opentelemetry(provider)
    metrics.reset()  # functions other tests timed would crowd the SDK's cardinality limit
    name = _name("otel")
    m = metrics.register(name, "data")
    m.hit(lookup_ns=40_000)
    m.hit(lookup_ns=40_000)
    m.miss(lookup_ns=3_000_000)
    m.store(nbytes=300)
    try:
        points: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
        data = reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "memo_redis"
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attrs = dict(point.attributes or {})
                        if attrs.get("function") == name:
                            attrs.pop("function")
                            points[(metric.name, tuple(sorted(attrs.items())))] = point.value
        base = (("category", "data"),)
        assert points[("memo_redis.calls", (*base, ("result", "hit")))] == 2
        assert points[("memo_redis.calls", (*base, ("result", "miss")))] == 1
        assert points[("memo_redis.stores", base)] == 1
        assert points[("memo_redis.bytes_stored", base)] == 300
        lookup = (*base, ("phase", "lookup"))
        assert points[("memo_redis.latency.count", lookup)] == 3
        assert points[("memo_redis.latency.sum", lookup)] == pytest.approx(0.00308)
        le = tuple(sorted((*lookup, ("le", "5e-05"))))
        assert points[("memo_redis.latency.bucket", le)] == 2
        inf = tuple(sorted((*lookup, ("le", "+Inf"))))
        assert points[("memo_redis.latency.bucket", inf)] == 3
    finally:
        handle.close()
        provider.shutdown()


def test_spans_are_no_ops_until_enabled_then_recorded() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    with metrics.span("memo_redis.miss", function="f") as nothing:
        assert nothing is None
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    handle = metrics.instrument_opentelemetry(MeterProvider(), spans=True,
                                              tracer_provider=tracer_provider)
    try:
        with metrics.span("memo_redis.miss", function="app.fetch", key="sql:users:data:1",
                          ttl=60, skipped=None):
            pass
    finally:
        handle.close()
    with metrics.span("memo_redis.invalidate", pattern="x:*"):
        pass
    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == ["memo_redis.miss"]
    assert dict(finished[0].attributes or {}) == {
        "function": "app.fetch", "key": "sql:users:data:1", "ttl": 60,
    }
