"""CircuitBreaker state machine: closed -> open after N failures -> half-open probe -> closed."""

from __future__ import annotations

import pytest

from memo_redis.breaker import CircuitBreaker
from memo_redis.exceptions import ConfigError


class Clock:
    """A controllable clock passed as the breaker's ``clock``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A clock the test advances by hand."""
    return Clock()


def test_stays_closed_below_threshold(clock: Clock) -> None:
    """Fewer consecutive failures than the threshold keep calls allowed."""
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow() is True
    assert breaker.is_open is False


def test_success_resets_the_count(clock: Clock) -> None:
    """A success between failures resets the consecutive-failure count."""
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.is_open is False


def test_opens_at_threshold_and_blocks_until_cool_down(clock: Clock) -> None:
    """At the threshold the breaker opens and refuses calls for reset_timeout seconds."""
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=2.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.is_open is True
    assert breaker.allow() is False
    clock.now += 1.99
    assert breaker.allow() is False


def test_half_open_lets_one_probe_through(clock: Clock) -> None:
    """After the cool-down exactly one caller probes; its success closes the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow() is True
    assert breaker.allow() is False  # a second caller waits for the probe
    breaker.record_success()
    assert breaker.is_open is False
    assert breaker.allow() is True


def test_failed_probe_reopens_for_another_cool_down(clock: Clock) -> None:
    """A failed probe opens the breaker again, counted from the probe's failure."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.5
    assert breaker.allow() is True
    breaker.record_failure()
    assert breaker.allow() is False
    clock.now += 0.9
    assert breaker.allow() is False
    clock.now += 0.2
    assert breaker.allow() is True


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"failure_threshold": 1.5}, "failure_threshold"),
        ({"reset_timeout": 0}, "reset_timeout"),
        ({"reset_timeout": -1.0}, "reset_timeout"),
        ({"reset_timeout": "1"}, "reset_timeout"),
    ],
    ids=["threshold-0", "threshold-bool", "threshold-float", "timeout-0", "timeout-neg",
         "timeout-str"],
)
def test_bad_arguments(kwargs: dict[str, object], needle: str) -> None:
    """Bad settings raise ConfigError naming the parameter and the value."""
    with pytest.raises(ConfigError, match=needle):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_repr_shows_state(clock: Clock) -> None:
    """repr() tells open from closed."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    assert repr(breaker).startswith("CircuitBreaker(closed")
    breaker.record_failure()
    assert repr(breaker).startswith("CircuitBreaker(open")


def test_silent_probe_frees_the_slot_after_a_cool_down(clock: Clock) -> None:
    """A probe that never reports holds the half-open slot for one cool-down at most."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow() is True
    clock.now += 0.5
    assert breaker.allow() is False
    clock.now += 0.5
    assert breaker.allow() is True
