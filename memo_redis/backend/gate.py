"""Whether a command may go out, and what its failure means.

* The circuit breaker skips Redis after repeated connection failures.
* Outages are logged once when they start and once when they end.
* Only connection and timeout failures are outages; a command Redis answered with an error
  (NOPERM, WRONGTYPE, OOM, READONLY, a script error) is a *refusal*, logged once per kind.
* Invalidations that could not be sent are kept and applied before this process next reads or
  writes the cache (:class:`Deferred`).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..breaker import CircuitBreaker
from ..exceptions import CacheUnavailable
from ..protocol.invalidation import Invalidator
from ..protocol.steps import Flow

log = logging.getLogger("memo_redis")

# Outages: they feed the circuit breaker. On Redis Cluster, CLUSTERDOWN during a failover and
# redis-py's own cluster errors (no node reachable, slot not covered) are outages too.
INFRA_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, ClusterError,
                       RedisClusterException)
CLIENT_ERRORS: Final = (RedisError, OSError, RedisClusterException)
UNGATED_OPS: Final = frozenset({"invalidate", "apply", "unlock", "hit_rate"})
"""Ops that neither read nor write cached values: they need not wait for deferred
invalidations."""
UNBROKEN_OPS: Final = frozenset({"apply", "unlock", "hit_rate"})
"""Ops the circuit breaker does not skip: a lock release (the lock would otherwise block other
callers until it expires), the statistics, and the invalidations applied once
Redis is back (their caller already passed the breaker)."""
MAX_DEFERRED: Final = 1000


def redact(text: str, password: str | None) -> str:
    """``text`` with ``password`` replaced by ``***``."""
    return text.replace(password, "***") if password else text


class Deferred:
    """Invalidations that failed, kept to be applied once Redis answers.

    Each is ``(kind, target)`` with kind ``"pattern"`` or ``"key"``, mapped to a sequence number
    (a newer failure of the same invalidation must be applied again).
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], int] = {}
        self._seq = 0
        self.calls = 0  # invalidations deferred since the last ones were applied
        self.mutex = threading.Lock()
        self.applying = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, kind: str, target: str) -> bool:
        """Keep one; True when it is the first kept (the start of a stretch to log)."""
        with self.mutex:
            if len(self.items) >= MAX_DEFERRED:
                # Too many to track: invalidating everything is always correct.
                self.items.clear()
                kind, target = "pattern", "*"
            first = not self.items
            self._seq += 1
            self.calls += 1
            self.items[(kind, target)] = self._seq
        return first

    def snapshot(self) -> tuple[list[tuple[tuple[str, str], int]], int]:
        """The kept invalidations and how many calls they stand for."""
        with self.mutex:
            return list(self.items.items()), self.calls

    def done(self, item: tuple[str, str], seq: int) -> None:
        """``item`` (kept as ``seq``) was applied."""
        with self.mutex:
            # Failed again meanwhile: that newer failure must be applied later too.
            if self.items.get(item) == seq:
                del self.items[item]

    def settled(self, calls: int) -> None:
        """``calls`` invalidations were applied."""
        with self.mutex:
            self.calls -= calls


class Gate:
    """The breaker, the outage state and the deferred invalidations of one cache."""

    def __init__(self, breaker: CircuitBreaker, target: str, password: str | None) -> None:
        self.breaker = breaker
        self.target = target
        self._password = password
        self.deferred = Deferred()
        self.outage = False
        self.last_error: BaseException | None = None
        self._warned: set[str] = set()

    def unavailable(self, op: str, exc: BaseException, *, cluster: bool) -> CacheUnavailable:
        """Record a failure (breaker, one warning per outage) and build the error to raise."""
        message = redact(f"{op} failed on {self.target}: {exc}", self._password)
        if isinstance(exc, (MovedError, ClusterCrossSlotError)) and not cluster:
            message += (" (the server is a Redis Cluster node: set REDIS_CLUSTER=true, "
                        "or pass RedisArgs(cluster=True, ...))")
        if isinstance(exc, INFRA_ERRORS):
            self.last_error = exc
            self.breaker.record_failure()
            if not self.outage:
                self.outage = True
                log.warning("memo_redis: Redis unavailable, running uncached: %s", message)
        else:
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("memo_redis: Redis refused a command, running uncached: %s", message)
        return CacheUnavailable(message)

    def circuit_open(self, op: str) -> CacheUnavailable:
        """The error of a call the open breaker skipped."""
        error = CacheUnavailable(
            f"{op} skipped: Redis at {self.target} failed repeatedly "
            f"(circuit open for {self.breaker.reset_timeout}s)"
        )
        # Chained like a failed call, so callers always find redis-py's error as __cause__.
        error.__cause__ = self.last_error
        return error

    def succeeded(self) -> None:
        """A command succeeded: close the breaker, end the outage."""
        if self.outage and not self.deferred:
            # With invalidations pending, the end of the outage is announced once they are
            # applied (that runs before anything else reads or writes the cache).
            self.outage = False
            log.warning("memo_redis: Redis at %s is back, caching resumed", self.target)
        self.breaker.record_success()

    @staticmethod
    def is_refusal(error: CacheUnavailable) -> bool:
        """True when Redis answered the call with an error (NOPERM, WRONGTYPE, OOM, READONLY,
        a script error), False for an outage (connection, timeout, circuit open)."""
        return not isinstance(error.__cause__, INFRA_ERRORS)

    def defer(self, kind: str, target: str) -> None:
        """Keep an invalidation that could not be sent, to apply it before this process reads or
        writes the cache again.

        The first invalidation kept is logged at error level (other processes may serve stale
        entries meanwhile); the next ones are only counted, and the end of the outage is logged
        with their number.
        """
        if self.deferred.add(kind, target):
            log.error("memo_redis: invalidation of %r could not be sent to %s; it is kept, with "
                      "any that follow, and applied once Redis answers (this process bypasses "
                      "the cache until then; other processes may serve stale entries)",
                      target, self.target)

    def applied(self, calls: int, distinct: int) -> None:
        """Log that ``calls`` deferred invalidations (``distinct`` different) were applied."""
        if self.outage:
            self.outage = False
            log.warning("memo_redis: Redis at %s is back, caching resumed; applied %d "
                        "invalidation(s) deferred during the outage (%d distinct)",
                        self.target, calls, distinct)
        else:
            log.warning("memo_redis: applied %d invalidation(s) that had failed on %s",
                        calls, self.target)

    def apply_flow(self, op: str, invalidator: Invalidator) -> Flow[None]:
        """Apply the invalidations that failed earlier, before ``op`` reads or writes the cache.

        Until they are applied, an entry they target could be served stale, or a computation
        that started before them could store its result: ``op`` raises
        :class:`CacheUnavailable` instead, so its caller runs uncached (read-your-writes within
        this process, across an outage or a failover).
        """
        deferred = self.deferred
        if not deferred.applying.acquire(blocking=False):
            raise CacheUnavailable(f"{op} skipped: invalidations that failed earlier are being "
                                   "applied by another thread")
        try:
            pending, calls = deferred.snapshot()
            for item, seq in pending:
                kind, target = item
                if kind == "key":
                    yield from invalidator.one(target, "apply")
                else:
                    yield from invalidator.pattern(target, "apply")
                deferred.done(item, seq)
            deferred.settled(calls)
            if pending:
                self.applied(calls, len(pending))
        finally:
            deferred.applying.release()
