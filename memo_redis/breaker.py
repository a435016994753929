"""A small circuit breaker: skip Redis for a cool-down after consecutive failures."""

from __future__ import annotations

import threading
import time

from .exceptions import ConfigError


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures and stays open ``reset_timeout`` s.

    While open, :meth:`allow` answers False at once, so a call costs no socket time. After the
    cool-down one caller is let through (half-open); its success closes the breaker, its failure
    opens it for another cool-down.
    """

    __slots__ = (
        "_failures", "_lock", "_opened_at", "_probing", "failure_threshold", "reset_timeout",
    )

    def __init__(self, failure_threshold: int = 3, reset_timeout: float = 1.0) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or (
            failure_threshold < 1
        ):
            raise ConfigError(
                f"failure_threshold must be an integer >= 1, got {failure_threshold!r}"
            )
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, (int, float)) or (
            reset_timeout <= 0
        ):
            raise ConfigError(f"reset_timeout must be a number > 0, got {reset_timeout!r}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while calls skip Redis."""
        return self._opened_at is not None

    def allow(self) -> bool:
        """May a call use Redis now?"""
        opened_at = self._opened_at
        if opened_at is None:
            return True
        if time.monotonic() - opened_at < self.reset_timeout:
            return False
        with self._lock:
            if self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        """A Redis call succeeded: close the breaker."""
        if self._failures or self._opened_at is not None:
            with self._lock:
                self._failures = 0
                self._opened_at = None
                self._probing = False

    def record_failure(self) -> None:
        """A Redis call failed: count it, and open the breaker at the threshold."""
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._failures >= self.failure_threshold or self._opened_at is not None:
                self._opened_at = time.monotonic()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return (
            f"CircuitBreaker({state}, failure_threshold={self.failure_threshold}, "
            f"reset_timeout={self.reset_timeout})"
        )
