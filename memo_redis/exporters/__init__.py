"""Where :mod:`memo_redis.metrics` goes: Redis (across processes), Prometheus, OpenTelemetry.

* :mod:`memo_redis.exporters.published`: :class:`~.published.RedisMetricsPublisher` adds each
  process's counts into ``__memo__:metrics:*`` hashes from a background thread;
  :func:`~.published.read_published` reads the totals (``memo-redis stats``/``top`` use it).
* :mod:`memo_redis.exporters.prometheus` (extra ``prometheus``): a collector and a one-line
  HTTP exporter.
* :mod:`memo_redis.exporters.otel` (extra ``otel``): observable instruments on a meter, and
  spans.

Each module imports its optional dependency itself, so importing this package costs nothing.
"""
