"""The Redis protocol of memo_redis, written once for sync and async callers (sans-I/O).

Nothing here performs I/O. Each step of the protocol is a request builder and a reply parser
(:mod:`.requests`); a step with control flow (an invalidation's SCAN loop, a miss's claim, wait,
compute and store) is a *flow*: a generator that yields :mod:`.steps` and receives their replies.
The drivers of :mod:`memo_redis.backend` run flows against redis-py's sync or asyncio client.
"""
