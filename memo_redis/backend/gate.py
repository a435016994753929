"""Whether a command may go out, and what its failure means.

* The circuit breaker skips Redis after repeated connection failures.
* Outages are logged once when they start and once when they end: the end only once no call
  has failed for a quiet period (:attr:`Gate.quiet_period`), so the successes and failures
  that alternate during a failover (nodes still up, a breaker probe) log one outage, not one
  per flap. The breaker itself closes at the first success, as before.
* Only connection and timeout failures are outages; a command Redis answered with an error
  (NOPERM, WRONGTYPE, OOM, READONLY, a script error) is a *refusal*, logged once per kind. An
  ACL refusal is logged once per missing permission, naming it (:func:`acl_refusal`): Redis
  names neither the key nor, before 7.2, the command a script was refused.
* Invalidations that could not be sent, or that too few replicas acknowledged
  (``wait_replicas``), are kept and applied before this process next reads or writes the cache
  (:class:`Deferred`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Final

from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..breaker import CircuitBreaker
from ..exceptions import CacheUnavailable
from ..protocol import steps
from ..protocol.invalidation import Invalidator, Unacknowledged
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
QUIET_FLOOR: Final = 5.0
"""Seconds without a failed call before an outage is logged as over (or two breaker
cool-downs, if longer): during a failover, failures recur at least once per cool-down (the
breaker's probe) plus a connect timeout, until Sentinel or the cluster has promoted a replica."""


_SCRIPTS: Final = {s.sha: s for s in (steps.STORE, steps.CLAIM, steps.BUMP, steps.DRAIN_INDEX,
                                      steps.INVALIDATE_ONE, steps.INVALIDATE_ROW,
                                      steps.RELEASE)}
_SCRIPT_AT: Final = re.compile(r"script: ([0-9a-f]{40}), on @user_script:(\d+)")
_NAMED: Final = re.compile(r"permissions to run the '([^']+)' command")
_CALL: Final = re.compile(r"redis\.call\('(\w+)'")
_SCRIPT_ACL: Final = ("The user executing the script", "ACL failure in script")


def acl_refusal(op: str, exc: BaseException) -> tuple[frozenset[str], str] | None:
    """What an ACL refusal (NOPERM) lacks: the permissions it may be (a command such as
    ``"SET"``, or ``"key"``) and a hint naming them; None when ``exc`` is not one.

    Redis names the command a client sent, but not the key, and (before 7.2) not the command a
    script called: that one is read from the script's line the error points at.
    """
    text = str(exc)
    if isinstance(exc, NoScriptError):  # a pipeline's SCRIPT LOAD failed before its EVALSHA
        return frozenset({"SCRIPT|LOAD"}), (
            " (memo_redis's script could not be loaded: if the Redis user may not run "
            "SCRIPT|LOAD, the ACL rule in the README's Security section lists what it needs)")
    if not isinstance(exc, NoPermissionError) and not any(m in text for m in _SCRIPT_ACL):
        return None
    where, calls = "", []
    at = _SCRIPT_AT.search(text)
    script = _SCRIPTS.get(at.group(1)) if at else None
    if at and script is not None:
        lines = script.source.split("\n")
        line = int(at.group(2))
        calls = list(dict.fromkeys(_CALL.findall(lines[line - 1]))) if line <= len(lines) else []
        where = f" in memo_redis's {script.name} script"
    named = _NAMED.search(text)
    if named:
        calls = [named.group(1).upper()]
    if not named and "key" in text.lower():
        missing = frozenset({"key"})
        what = f"access a key of this {op}{where} (allow its key pattern)"
    elif not named and "channel" in text.lower():
        missing = frozenset({"channel"})
        what = f"use a channel of this {op}"
    else:
        missing = frozenset(calls or ("command",))
        what = f"run {' or '.join(calls) or 'a command'}{where}"
    return missing, (f" (ACL: the Redis user may not {what}; memo_redis's rule is in the "
                     "README's Security section, and the server's ACL LOG names each refusal)")


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

    def __init__(self, breaker: CircuitBreaker, target: str, password: str | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.breaker = breaker
        self.target = target
        self._password = password
        self.deferred = Deferred()
        self.outage = False
        """Logged as started and not yet as over (calls may succeed meanwhile)."""
        self.last_error: BaseException | None = None
        self._warned: set[str] = set()
        self.clock = clock
        """Seconds, for the quiet period (a test may swap it)."""
        self.quiet: float | None = None
        """The quiet period in seconds; None: :data:`QUIET_FLOOR` or two breaker cool-downs."""
        self._last_failure = 0.0
        self._answered = False  # a call succeeded since the last failure
        self._unacknowledged_until = 0.0
        self._outage_lock = threading.Lock()

    @property
    def quiet_period(self) -> float:
        """Seconds without a failed call after which an outage is logged as over."""
        if self.quiet is not None:
            return self.quiet
        return max(QUIET_FLOOR, 2 * self.breaker.reset_timeout)

    def unavailable(self, op: str, exc: BaseException, *, cluster: bool) -> CacheUnavailable:
        """Record a failure (breaker, one warning per outage) and build the error to raise."""
        message = redact(f"{op} failed on {self.target}: {exc}", self._password)
        if isinstance(exc, (MovedError, ClusterCrossSlotError)) and not cluster:
            message += (" (the server is a Redis Cluster node: set REDIS_CLUSTER=true, "
                        "or pass RedisArgs(cluster=True, ...))")
        if isinstance(exc, INFRA_ERRORS):
            self.last_error = exc
            self.breaker.record_failure()
            self._failed(message)
        else:
            refusal = acl_refusal(op, exc)
            kinds = {type(exc).__name__}
            if refusal is not None:  # once per missing permission, named
                kinds = {f"acl:{p}" for p in refusal[0]}
                message += refusal[1]
            if not kinds & self._warned:
                self._warned.update(kinds)
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
        """A command succeeded: close the breaker; end the outage once it has been quiet."""
        if self.outage:
            self._succeeded_in_outage()
        self.breaker.record_success()

    def _failed(self, message: str) -> None:
        """An outage failure: log the start of an outage, unless this one continues (a failure
        within the quiet period after the last one: a failover's flap)."""
        now = self.clock()
        with self._outage_lock:
            # Calls succeeded after the last failure and none failed for the quiet period, but
            # none came after it to log the end: that outage is over, and this one is new.
            over = (self.outage and self._answered
                    and now - self._last_failure >= self.quiet_period)
            starts = over or not self.outage
            self.outage, self._answered, self._last_failure = True, False, now
        if over:
            log.warning("memo_redis: Redis at %s is back, caching resumed (logged late: no call "
                        "came after the quiet period)", self.target)
        if starts:
            log.warning("memo_redis: Redis unavailable, running uncached: %s", message)

    def _succeeded_in_outage(self) -> None:
        now = self.clock()
        with self._outage_lock:
            if not self.outage:
                return
            self._answered = True
            # With invalidations pending, the end of the outage is announced once they are
            # applied (that runs before anything else reads or writes the cache).
            if self.deferred or now - self._last_failure < self.quiet_period:
                return
            self.outage = False
        log.warning("memo_redis: Redis at %s is back, caching resumed (no call has failed for "
                    "%.1f s)", self.target, self.quiet_period)

    @staticmethod
    def is_refusal(error: CacheUnavailable) -> bool:
        """True when Redis answered the call with an error (NOPERM, WRONGTYPE, OOM, READONLY,
        a script error), False for an outage (connection, timeout, circuit open)."""
        return not isinstance(error.__cause__, INFRA_ERRORS)

    def defer(self, kind: str, target: str, error: BaseException | None = None) -> None:
        """Keep an invalidation that could not be sent (or that too few replicas acknowledged:
        ``error`` is :class:`Unacknowledged`), to apply it before this process reads or writes
        the cache again.

        The first invalidation kept is logged at error level (other processes may serve stale
        entries meanwhile); the next ones are only counted, and the end of the outage is logged
        with their number.
        """
        first = self.deferred.add(kind, target)
        if first and isinstance(error, Unacknowledged):
            log.error("memo_redis: invalidation of %r was applied by %s but not acknowledged in "
                      "time (%s); it is kept, with any that follow, and applied again until "
                      "enough replicas acknowledge it (this process bypasses the cache until "
                      "then; a failover meanwhile could bring back the entries it invalidated)",
                      target, self.target, error)
        elif first:
            log.error("memo_redis: invalidation of %r could not be sent to %s; it is kept, with "
                      "any that follow, and applied once Redis answers (this process bypasses "
                      "the cache until then; other processes may serve stale entries)",
                      target, self.target)

    def applied(self, calls: int, distinct: int) -> None:
        """Log that ``calls`` deferred invalidations (``distinct`` different) were applied."""
        now = self.clock()
        with self._outage_lock:
            during = self.outage
            if during and now - self._last_failure >= self.quiet_period:
                self.outage = during = False
                back = True
            else:
                back = False
        if back:
            log.warning("memo_redis: Redis at %s is back, caching resumed; applied %d "
                        "invalidation(s) deferred during the outage (%d distinct)",
                        self.target, calls, distinct)
        elif during:  # the outage is logged as over after its quiet period
            log.warning("memo_redis: applied %d invalidation(s) deferred during the outage "
                        "(%d distinct) on %s", calls, distinct, self.target)
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
        if self.clock() < self._unacknowledged_until:
            raise CacheUnavailable(f"{op} skipped: invalidations kept earlier were not "
                                   "acknowledged by enough replicas (wait_replicas); they are "
                                   "tried again once per breaker cool-down")
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
        except Unacknowledged:
            # Each try bumps the generations again and may wait wait_timeout: not on every read.
            self._unacknowledged_until = self.clock() + self.breaker.reset_timeout
            raise
        finally:
            deferred.applying.release()
