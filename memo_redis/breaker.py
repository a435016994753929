"""A small circuit breaker: skip Redis for a cool-down after consecutive failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .exceptions import ConfigError


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures and stays open ``reset_timeout`` s.

    While open, :meth:`allow` answers False at once, so a call costs no socket time. After the
    cool-down one caller is let through (half-open); its success closes the breaker, its failure
    opens it for another cool-down. A probe that reports neither (its task was cancelled, or it
    raised something that says nothing about the connection) holds the half-open slot for one
    more cool-down at most, so the breaker can never stay open for good.

    ``clock`` (default :func:`time.monotonic`) exists for tests.

    >>> breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0)
    >>> for _ in range(3):
    ...     breaker.record_failure()
    >>> breaker.is_open, breaker.allow()
    (True, False)
    """

    __slots__ = (
        "_clock", "_failures", "_lock", "_opened_at", "_probe_started", "failure_threshold",
        "reset_timeout",
    )

    def __init__(self, failure_threshold: int = 3, reset_timeout: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or (
            failure_threshold < 1
        ):
            raise ConfigError(
                f"failure_threshold must be an integer >= 1, got {failure_threshold!r}"
            )
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, (int, float)) or (
            not reset_timeout > 0 or reset_timeout == float("inf")
        ):
            raise ConfigError(
                f"reset_timeout must be a number of seconds > 0, got {reset_timeout!r}"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while calls skip Redis (including the half-open probe's time)."""
        return self._opened_at is not None

    def allow(self) -> bool:
        """May a call use Redis now? Costs no system call while the breaker is closed or open."""
        opened_at = self._opened_at
        if opened_at is None:
            return True
        now = self._clock()
        if now - opened_at < self.reset_timeout:
            return False
        with self._lock:
            if self._opened_at is None:  # closed meanwhile by another caller's success
                return True
            probe = self._probe_started
            if probe is not None and now - probe < self.reset_timeout:
                return False
            self._probe_started = now
            return True

    def record_success(self) -> None:
        """A Redis call succeeded: close the breaker."""
        if self._failures or self._opened_at is not None:
            with self._lock:
                self._failures = 0
                self._opened_at = None
                self._probe_started = None

    def record_failure(self) -> None:
        """A Redis call failed: count it, and open the breaker at the threshold."""
        with self._lock:
            self._failures += 1
            self._probe_started = None
            if self._failures >= self.failure_threshold or self._opened_at is not None:
                self._opened_at = self._clock()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return (
            f"CircuitBreaker({state}, failure_threshold={self.failure_threshold}, "
            f"reset_timeout={self.reset_timeout})"
        )
