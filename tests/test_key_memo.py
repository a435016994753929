"""The memo of recent calls' keys gives exactly the keys a fresh derivation gives."""

from __future__ import annotations

import pytest

from memo_redis import RedisCaching, cached
from memo_redis.decorators.plan import KeyPlan


def _plan() -> KeyPlan:
    def fetch(table: object, n: object = 0) -> None: ...

    return KeyPlan(fetch, prefix="sql:{table}", namespace=None, category="data", ignore=(),
                   key=None, digest_length=None)


@pytest.mark.parametrize("args", [
    ("users", 1), ("users", True), ("users", 1.0), ("users", 0.0), ("users", -0.0),
    ("users", None), ("users", b"1"), ("users", "1"), ("users",), ("users", [1]),
])
def test_memoized_key_equals_a_fresh_derivation(args: tuple[object, ...]) -> None:
    """A call's key, asked twice (the second from the memo), equals a plain derivation."""
    plan = _plan()
    first = plan.derive("memo", 16, None, args, {})
    again = plan.derive("memo", 16, None, args, {})
    assert first == again == _plan()._derive("memo", 16, None, args, {})


def test_equal_values_of_different_types_get_different_keys() -> None:
    """1, True, 1.0 and 0.0 / -0.0 compare equal but are different arguments: the memo never
    serves one's key for another."""
    plan = _plan()
    keys = [plan.derive("memo", 16, None, ("users", value), {})[0]
            for value in (1, True, 1.0, 0.0, -0.0, 1, True)]
    assert len(set(keys[:5])) == 5
    assert keys[5] == keys[0] and keys[6] == keys[1]


def test_memo_is_bounded() -> None:
    """The memo never holds more than its bound, however many distinct calls."""
    plan = _plan()
    for n in range(10_000):
        plan.derive("memo", 16, None, ("users", n), {})
    assert len(plan._memo) <= 4096


def test_namespace_and_digest_length_are_part_of_the_memo(cache: RedisCaching) -> None:
    """One function used with two caches (namespaces, digest lengths) keys each call by the
    cache it runs on."""
    other = RedisCaching(cache.args, namespace="other", digest_length=8)

    @cached
    def square(x: int) -> int:
        return x * x

    memo_redis_default = square.cache_key(3)
    import memo_redis

    memo_redis.set_default_cache(other)
    try:
        assert square.cache_key(3) != memo_redis_default
        assert square.cache_key(3).startswith("other:")
        assert len(square.cache_key(3).rsplit(":", 1)[1]) == 8
    finally:
        memo_redis.set_default_cache(None)
        other.close()
