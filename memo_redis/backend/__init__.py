"""The only code that talks to Redis: redis-py's clients, and the drivers that run the protocol.

:mod:`.clients` builds redis-py clients from :class:`~memo_redis.RedisArgs`; :mod:`.gate` decides
whether a command may go out (circuit breaker, deferred invalidations) and turns redis-py's
errors into :class:`~memo_redis.CacheUnavailable`; :mod:`.drivers` runs the protocol's flows
(:mod:`memo_redis.protocol`) on the sync client or on the running event loop's async client.
"""
