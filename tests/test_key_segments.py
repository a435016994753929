"""A value substituted into a key template or a SQL table name stays inside its own segment.

Pins issue 10's defect 7: ``table="users:data"`` once rendered ``sql:users:data:*``, which is
exactly the pattern of table ``users``'s entries.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import redis

from memo_redis import ConfigError, RedisArgs, RedisCaching, cached, invalidates
from memo_redis.keys import KeyTemplate, segment_escape
from memo_redis.sql import get_data_from_table, table_pattern, update_data_in_table


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("users", "users"),
        ("users:data", "users%3Adata"),
        ("100%", "100%25"),
        ("%3A", "%253A"),
        ("{tag}", "%7Btag%7D"),
        ("line\nbreak\x00", "line%0Abreak%00"),
        ("users*", "users*"),
    ],
    ids=["plain", "colon", "percent", "encoded-looking", "braces", "control", "glob-kept"],
)
def test_segment_escape(value: str, escaped: str) -> None:
    """Only % : { } and control characters are percent-encoded; other text is unchanged."""
    assert segment_escape(value) == escaped


def test_segment_escape_is_one_to_one() -> None:
    """Two different values never escape to the same text (% is encoded too)."""
    values = ["a:b", "a%3Ab", "a%253Ab", "a%b", "a%25b", "a{b", "a%7Bb"]
    assert len({segment_escape(v) for v in values}) == len(values)


def test_template_keeps_the_segment_count() -> None:
    """A rendered key or pattern has as many ':' segments as its template, whatever the value."""
    template = KeyTemplate("sql:{table}:*", ["table"], owner="app.write")
    for value in ("users", "users:data", "a:b:c:d", ":", "x{y}z"):
        rendered = template.render({"table": value}, escape=True)
        assert rendered.count(":") == 2, rendered


def test_invalidating_a_colon_table_spares_its_prefix_table(cache: RedisCaching,
                                                            raw: redis.Redis) -> None:
    """@invalidates("sql:{table}:*") with table="users:data" leaves table users's entries."""
    calls: list[str] = []

    @cached(cache=cache, prefix="sql:{table}")
    def fetch(table: str, row: int = 0) -> list[Any]:
        calls.append(table)
        return [table, row]

    @cache.invalidates("sql:{table}:*")
    def write(table: str) -> None:
        return None

    fetch("users")
    fetch("users:data")
    assert fetch.cache_key("users:data").startswith("sql:users%3Adata:")
    write("users:data")
    assert raw.exists(fetch.cache_key("users")) == 1
    assert raw.exists(fetch.cache_key("users:data")) == 0
    fetch("users")
    fetch("users:data")
    assert calls == ["users", "users:data", "users:data"]


def test_colon_table_entries_are_not_in_the_prefix_tables_scope(cache: RedisCaching,
                                                                raw: redis.Redis) -> None:
    """@cached(prefix="sql:{table}") never files table="users:data" inside table users's scope."""
    @cached(cache=cache, prefix="sql:{table}")
    def fetch(table: str) -> str:
        return table

    fetch("users:data")
    cache.invalidate("sql:users:*")
    assert raw.exists(fetch.cache_key("users:data")) == 1


@pytest.mark.parametrize("table", ["users:data", "a{b}", "bad\nname", "50%"],
                         ids=["colon", "braces", "control", "percent"])
def test_sql_layer_refuses_a_table_name_that_would_leave_its_segment(
        cache: RedisCaching, table: str) -> None:
    """The seed SQL API refuses such a table with a ValueError naming it; nothing runs."""
    ran: list[str] = []
    with pytest.raises(ValueError, match=r"table .* cannot contain") as info:
        get_data_from_table(cache, table, ["id"], fetcher=lambda: ran.append("read"))
    assert repr(table) in str(info.value)
    with pytest.raises(ValueError, match="cannot contain"):
        update_data_in_table(cache, table, {"id": 1}, ["id"], writer=lambda: ran.append("w"))
    with pytest.raises(ValueError, match="cannot contain"):
        table_pattern(table)
    assert ran == []


@pytest.mark.parametrize("raw_value", ["inf", "-inf", "nan", "Infinity"])
@pytest.mark.parametrize("variable", ["REDIS_SOCKET_TIMEOUT", "REDIS_SOCKET_CONNECT_TIMEOUT"])
def test_non_finite_timeouts_are_refused(variable: str, raw_value: str) -> None:
    """REDIS_SOCKET_TIMEOUT=inf (or nan) is a ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError, match=f"{variable} must be a finite number") as info:
        RedisArgs.from_env({variable: raw_value})
    assert repr(raw_value) in str(info.value)


@pytest.mark.parametrize("option", ["lock_timeout", "lock_wait", "fence_ttl"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_cache_timeouts_are_refused(option: str, value: float) -> None:
    """RedisCaching(lock_timeout=inf) and friends are ConfigErrors naming the option."""
    with pytest.raises(ConfigError, match=f"{option} must be a finite number"):
        RedisCaching("redis://127.0.0.1:1/0", **{option: value})


LONE = "\udc80"  # what a surrogateescape decode of a stray byte leaves


@pytest.mark.parametrize("where", ["namespace", "category", "prefix", "decorator namespace",
                                   "invalidates pattern"])
def test_lone_surrogates_in_configured_text_are_refused_at_once(where: str) -> None:
    """Text no key could be sent with (a lone surrogate cannot be encoded as UTF-8) is a
    ConfigError naming the option when the cache or decorator is built, not an exception in
    every later call."""

    def fetch(table: str) -> str:
        return table

    with pytest.raises(ConfigError, match="lone surrogate") as info:
        if where == "namespace":
            RedisCaching("redis://127.0.0.1:1/0", namespace=f"app{LONE}")
        elif where == "category":
            cached(category=f"data{LONE}")(fetch)
        elif where == "prefix":
            cached(prefix=f"sql{LONE}:{{table}}")(fetch)
        elif where == "decorator namespace":
            cached(namespace=f"app{LONE}")(fetch)
        else:
            invalidates(f"sql{LONE}:{{table}}:*")(fetch)
    message = str(info.value)
    assert where.split()[-1] in message or "key template" in message
    assert "'\\udc80' at index" in message
