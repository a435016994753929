"""Decorated functions record into memo_redis.metrics; cache_info() counts L1 hits apart."""

from __future__ import annotations

import time
import urllib.request

import pytest

from memo_redis import CacheInfo, RedisCaching, cached, metrics


def _recorder(qualname_tail: str) -> metrics.FunctionMetrics:
    found = [m for m in metrics.functions() if m.function.endswith(qualname_tail)]
    assert len(found) == 1, [m.function for m in metrics.functions()]
    return found[0]


def test_decorated_calls_record_hits_misses_and_stores(cache: RedisCaching) -> None:
    """Two calls of one key: one miss, one store, one hit, and a compute time, in the metrics."""
    @cached(cache=cache, category="wiring")
    def wired_square(x: int) -> int:
        return x * x

    assert wired_square(4) == 16
    assert wired_square(4) == 16
    m = _recorder("wired_square")
    assert m.category == "wiring"
    assert (m.misses, m.stores, m.hits, m.l1_hits, m.errors) == (1, 1, 1, 0, 0)
    summary = metrics.snapshot()[m.id]
    assert summary["hits"] == 1 and summary["misses"] == 1
    assert sum(m.compute_buckets) == 1


def test_l1_hits_are_counted_apart(cache: RedisCaching) -> None:
    """With local=True, cache_info() and the metrics tell in-process hits from Redis hits."""
    @cached(cache=cache, local=True)
    def wired_local(x: int) -> int:
        return x + 1

    # The L1 takes entries once its tracking connection is up: call until one is served locally.
    deadline = time.monotonic() + 30
    calls = 0
    while wired_local.cache_info().l1_hits == 0 and time.monotonic() < deadline:
        assert wired_local(1) == 2
        calls += 1
    info = wired_local.cache_info()
    assert info.l1_hits >= 1
    assert info.misses == 1
    assert info.hits == calls - 1
    m = _recorder("wired_local")
    assert m.l1_hits == info.l1_hits
    assert m.hits == info.hits - info.l1_hits
    assert CacheInfo(0, 0, 0, 0) == (0, 0, 0, 0, 0)


def test_prometheus_scrape_sees_decorated_calls(cache: RedisCaching) -> None:
    """The Prometheus exporter, scraped over HTTP, shows a decorated function's calls."""
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    @cached(cache=cache)
    def wired_scraped(x: int) -> int:
        return -x

    for _ in range(3):
        wired_scraped(7)
    name = _recorder("wired_scraped").function
    server, port = metrics.start_prometheus_exporter(port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    calls = {s.labels["result"]: s.value
             for family in text_string_to_metric_families(body) for s in family.samples
             if s.name == "memo_redis_calls_total" and s.labels.get("function") == name}
    assert calls["miss"] == 1
    assert calls["hit"] == 2



def test_single_flight_waits_are_recorded(cache: RedisCaching) -> None:
    """A caller that waits for another thread's computation records one wait and its time."""
    import threading

    started, release = threading.Event(), threading.Event()

    @cached(cache=cache)
    def wired_slow(x: int) -> int:
        started.set()
        assert release.wait(10)
        return x

    leader = threading.Thread(target=wired_slow, args=(1,))
    leader.start()
    assert started.wait(10)
    follower = threading.Thread(target=wired_slow, args=(1,))
    follower.start()
    time.sleep(0.05)  # let the follower reach its wait; the wait time is what is measured
    release.set()
    leader.join(10)
    follower.join(10)
    m = _recorder("wired_slow")
    assert m.flight_waits == 1
    assert m.flight_wait_ns >= 40_000_000
    assert m.misses == 2 and m.stores == 1


def test_early_refreshes_lookups_and_invalidations_are_recorded(cache: RedisCaching,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """An XFetch refresh counts as an early refresh; hits fill the lookup histogram;
    fn.invalidate and cache_clear count as invalidations of the function."""
    import random

    @cached(cache=cache, early_refresh=True, ttl=5)
    def wired_hot(x: int) -> int:
        time.sleep(0.02)  # XFetch weighs the compute time: 20 ms x -log(coin) > 5 s
        return x

    assert wired_hot(1) == 1
    assert wired_hot(1) == 1  # a hit: timed
    monkeypatch.setattr(random, "random", lambda: 1e-300)  # the coin says: refresh now
    assert wired_hot(1) == 1
    monkeypatch.undo()
    m = _recorder("wired_hot")
    assert m.early_refreshes == 1
    for _ in range(16):
        wired_hot(1)  # one lookup in 8 is timed
    assert sum(m.lookup_buckets) >= 2 and m.lookup_sum_ns > 0
    assert wired_hot.invalidate(1) in (0, 1)
    wired_hot.cache_clear()
    assert m.invalidations == 2


def test_spans_around_misses_and_invalidations(cache: RedisCaching) -> None:
    """With spans on, a miss and an invalidation each produce one span; hits produce none."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    handle = metrics.instrument_opentelemetry(MeterProvider(), spans=True,
                                              tracer_provider=tracer_provider)
    try:
        @cached(cache=cache, prefix="sql:spans")
        def wired_spans(x: int) -> int:
            return x

        wired_spans(1)
        wired_spans(1)
        cache.invalidate("sql:spans:*")
    finally:
        handle.close()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["memo_redis.miss", "memo_redis.invalidate"]
    assert dict(spans[0].attributes or {})["function"].endswith("wired_spans")
    assert dict(spans[1].attributes or {}) == {"pattern": "sql:spans:*"}
