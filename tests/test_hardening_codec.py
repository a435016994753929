"""Hostile stored values and arguments: nesting depth, decode failures and decoded size are bounded.

Regression tests for issue 10 (defects 1, 4 and 5, and arguments nested too deep). Stored values
are written with a raw client at the exact keys memo_redis reads, on the private test server;
readers that could crash run in a subprocess whose exit status is checked.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memo_redis import RedisCaching, SerializationError, cached, envelope
from memo_redis.keys import MAX_DEPTH as KEY_MAX_DEPTH
from memo_redis.keys import canonical_bytes
from memo_redis.serialization import FLAG_ZLIB, MAX_DEPTH, DecodeError, Serializer
from memo_redis.servers.embedded import EmbeddedServer

MiB = 1024 * 1024

# The reader: a decorated function and a cache.get key, as another process of the application
# would read them. ``store`` computes and stores a valid entry and prints the key; ``read``
# prints what the function and get() return; ``measure`` also prints the tracemalloc peak.
READER = textwrap.dedent(
    """
    import sys, tracemalloc
    from memo_redis import RedisCaching, cached

    url, mode = sys.argv[1], sys.argv[2]
    cache = RedisCaching(url)

    @cached(cache=cache, prefix="hostile", ttl=600)
    def fetch(x):
        return ("stored" if mode == "store" else "computed", x)

    if mode == "store":
        fetch(1)
        cache.set("hostile:get", ("stored", 1), ttl=600)
        print(fetch.cache_key(1))
    else:
        cache.check_cache_health()  # connect before measuring
        tracemalloc.start()
        print(repr(fetch(1)))
        print(repr(cache.get("hostile:get", "default")))
        print(repr(cache.get_many(["hostile:get"])))
        print(tracemalloc.get_traced_memory()[1])
    """
)


def _reader(server: EmbeddedServer, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(
        [sys.executable, "-c", READER, server.url, mode],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def _stored_keys(server: EmbeddedServer) -> tuple[str, str]:
    """Let a reader process store valid entries; return (decorated key, get key)."""
    done = _reader(server, "store")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), "hostile:get"


def _replace_body(raw: redis.Redis, key: str, body: bytes, codec_flags: int) -> None:
    """Rewrite the entry at ``key`` with the same stamp, fingerprint and timing but ``body``."""
    current = raw.get(key)
    assert current is not None
    env = envelope.unpack(current)
    assert env is not None
    early = (env.expires_ms, env.delta_ms) if env.flags & envelope.FLAG_EARLY else None
    head, tail = envelope.pack_tail(codec_flags, body, env.fingerprint, early)
    raw.set(key, head + env.stamp + tail, keepttl=True)


def _hostile_tuples(levels: int) -> bytes:
    """A msgpack body of ``levels`` nested tuples (ext type 1), built by hand: no encoder check."""
    body = msgpack.packb(1)
    for _ in range(levels):
        body = msgpack.packb(msgpack.ExtType(1, b"\x91" + body))  # fixarray of one item
    return body


def _read_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, f"reader exited with {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.strip().splitlines()


def _nested(levels: int, kind: type = tuple) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = kind([value])
    return value


# --- defect 1: nesting depth -----------------------------------------------------------------


@pytest.mark.parametrize("levels", [200, 5000])
def test_hostile_deep_tuples_are_a_miss_for_a_reader_process_never_a_crash(
    server: EmbeddedServer, raw: redis.Redis, levels: int
) -> None:
    """Tuples nested 200+ deep at a decorated key and a get() key: the reader exits 0, misses."""
    fn_key, get_key = _stored_keys(server)
    for key in (fn_key, get_key):
        _replace_body(raw, key, _hostile_tuples(levels), 0)
    lines = _read_lines(_reader(server, "read"))
    assert lines[:3] == ["('computed', 1)", "'default'", "{}"]


def test_tuples_nested_max_depth_round_trip_and_one_more_is_refused() -> None:
    """MAX_DEPTH nested tuples (and sets, lists) round-trip; one level more is refused by name."""
    serializer = Serializer()
    for kind in (tuple, list, frozenset):
        value = _nested(MAX_DEPTH, kind)
        assert serializer.decode(*serializer.encode(value)) == value
        with pytest.raises(SerializationError, match=f"MAX_DEPTH={MAX_DEPTH}"):
            serializer.encode(_nested(MAX_DEPTH + 1, kind))
    for codec in ("json", "pickle"):
        with pytest.raises(SerializationError, match=f"MAX_DEPTH={MAX_DEPTH}"):
            Serializer(codec).encode(_nested(MAX_DEPTH + 1, list))
    with pytest.raises(SerializationError, match=f"MAX_DEPTH={MAX_DEPTH}"):
        serializer.encode_plain_json(_nested(MAX_DEPTH + 1, list))
    assert MAX_DEPTH == 64


def test_hostile_bytes_one_level_too_deep_are_a_decode_error() -> None:
    """Hand-made bytes with MAX_DEPTH + 1 nested tuples raise DecodeError; MAX_DEPTH decode."""
    serializer = Serializer()
    assert serializer.decode(0, _hostile_tuples(MAX_DEPTH)) == _nested(MAX_DEPTH)
    with pytest.raises(DecodeError, match="MAX_DEPTH"):
        serializer.decode(0, _hostile_tuples(MAX_DEPTH + 1))


def test_deepest_allowed_value_decodes_on_a_thread_with_a_small_stack() -> None:
    """Decoding MAX_DEPTH nested tuples needs under 512 KiB of C stack (a subprocess, exit 0)."""
    script = textwrap.dedent(
        f"""
        import threading
        from memo_redis.serialization import Serializer, DecodeError
        import msgpack
        def hostile(levels):
            body = msgpack.packb(1)
            for _ in range(levels):
                body = msgpack.packb(msgpack.ExtType(1, b"\\x91" + body))
            return body
        threading.stack_size(512 * 1024)
        out = []
        def run():
            out.append(Serializer().decode(0, hostile({MAX_DEPTH})) is not None)
            try:
                Serializer().decode(0, hostile(10_000))
            except DecodeError:
                out.append("refused")
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        print(out)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, 'refused']"


def test_decorated_result_nested_too_deep_raises_and_stores_nothing(
    cache: RedisCaching, raw: redis.Redis
) -> None:
    """A decorated function returning a 200-deep tuple raises SerializationError naming the limit
    (as for any unstorable result), stores nothing and leaves no lock: the next call is not held."""
    calls: list[int] = []

    @cached(cache=cache, prefix="deep", ttl=60)
    def deep(x: int) -> Any:
        calls.append(x)
        return _nested(200)

    key = deep.cache_key(1)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(SerializationError, match=f"nested deeper than MAX_DEPTH={MAX_DEPTH}"):
            deep(1)
        assert time.monotonic() - started < 1.0  # lock_wait is 10 s: no lock was left behind
    assert calls == [1, 1]
    assert raw.exists(key) == 0
    bookkeeping = (b"__memo__:gen:",)  # generation tokens of the scope, created by lookups
    assert [k for k in raw.scan_iter() if b"deep" in k and not k.startswith(bookkeeping)] == []


# --- defect 4: every decode failure is a miss ---------------------------------------------------


DEEP_JSON = "[" * 100_000 + "]" * 100_000


def test_deep_json_at_a_decorated_key_is_a_logged_miss(
    cache: RedisCaching, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Deep JSON text (plain, or in an envelope with the JSON codec) at a decorated key: the
    function's own result, one warning, never RecursionError."""

    @cached(cache=cache, prefix="json", ttl=60)
    def fetch(x: int) -> tuple[str, int]:
        return ("computed", x)

    assert fetch(1) == ("computed", 1)
    key = fetch.cache_key(1)
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        _replace_body(raw, key, DEEP_JSON.encode(), 1)  # codec id 1: JSON
        assert fetch(1) == ("computed", 1)
        raw.set(key, DEEP_JSON)  # the seed's plain format
        assert fetch(1) == ("computed", 1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 2  # at most one per key and kind of problem
    assert all(key in r.getMessage() for r in warnings)


def test_deep_json_at_a_get_key_is_the_default_with_one_warning(
    cache: RedisCaching, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Deep plain JSON at a get() key: the default (get, get_many), logged once, never raised."""
    raw.set("deep:json", DEEP_JSON)
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        assert cache.get("deep:json", "default") == "default"
        assert cache.get("deep:json") is None
        assert cache.get_many(["deep:json"]) == {}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "deep:json" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("flags", "body"),
    [
        (0, b"\xc7\x05\x01\x91\x91\x91\x91\x91"),  # a tuple whose array is truncated
        (0, b"\xd4\x04\x00"),  # a datetime ext of the wrong size
        (0, b"\xd5\x08\xff\xfe"),  # a Decimal that is not ASCII
        (0, b"\xd4\x63\x00"),  # an unknown ext code
        (0, b"\xdd\xff\xff\xff\xff"),  # an array declaring 4 G items in 5 bytes
        (1, b"\xff\xfe not utf-8"),
        (1, b"1" * 5000),  # an int beyond the int/str conversion limit
        (2, b"\x80\x05N."),  # pickle data, refused by a msgpack serializer
        (3, b"\x00"),  # codec id 3 is unassigned
        (FLAG_ZLIB, b"not zlib"),
        (FLAG_ZLIB, zlib.compress(b"\x91\x01")[:-3]),  # truncated stream
    ],
)
def test_every_decode_failure_is_one_decode_error(flags: int, body: bytes) -> None:
    """Each way stored bytes can fail to decode raises DecodeError, chained from the cause."""
    with pytest.raises(DecodeError):
        Serializer().decode(flags, body, max_size=8 * MiB)


def test_plain_json_decode_failures_are_decode_errors() -> None:
    """decode_plain_json raises DecodeError for RecursionError and UnicodeDecodeError alike."""
    serializer = Serializer()
    for stored in (DEEP_JSON, DEEP_JSON.encode(), b"\xff\xfe", b"{"):
        with pytest.raises(DecodeError):
            serializer.decode_plain_json(stored)


# --- defect 5: bounded decoding -----------------------------------------------------------------


def _zlib_bomb(inflated: int) -> bytes:
    """A zlib stream of ``inflated`` zero bytes, built without holding them in memory."""
    compressor = zlib.compressobj(9)
    chunk = bytes(MiB)
    parts = [compressor.compress(chunk) for _ in range(inflated // MiB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_zlib_bomb_at_valid_entries_is_a_miss_with_bounded_memory(
    server: EmbeddedServer, raw: redis.Redis
) -> None:
    """A 512 MiB zlib bomb under a decorated key and a get() key: misses, and the reader's
    traced memory peak stays under 64 MiB (it stops inflating at max_value_size, 8 MiB)."""
    fn_key, get_key = _stored_keys(server)
    bomb = _zlib_bomb(512 * MiB)
    assert len(bomb) < MiB
    for key in (fn_key, get_key):
        _replace_body(raw, key, bomb, FLAG_ZLIB)  # codec msgpack, compressed
    lines = _read_lines(_reader(server, "measure"))
    assert lines[:3] == ["('computed', 1)", "'default'", "{}"]
    assert int(lines[3]) < 64 * MiB


def test_value_from_a_cache_with_a_larger_limit_is_a_miss_for_a_smaller_one(
    server: EmbeddedServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Values a cache with max_value_size=64 MiB wrote (raw or compressed) are misses, logged
    once per key, for a reader with max_value_size=1 MiB; within its limit it reads them."""
    big = RedisCaching(server.args(), max_value_size=64 * MiB)
    small = RedisCaching(server.args(), max_value_size=1 * MiB)
    try:
        incompressible = os.urandom(2 * MiB)
        compressible = [bytes(2 * MiB)]
        assert big.set("big:raw", incompressible)
        assert big.set("big:zlib", compressible)
        assert len(raw.get("big:zlib") or b"") < MiB  # stored compressed, inflates beyond 1 MiB
        with caplog.at_level(logging.WARNING, logger="memo_redis"):
            for _ in range(2):
                assert small.get("big:raw", "default") == "default"
                assert small.get("big:zlib", "default") == "default"
                assert small.get_many(["big:raw", "big:zlib"]) == {}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert all("max_size=1048576" in w for w in warnings)
        assert big.get("big:zlib") == compressible

        def fetch(x: int) -> list[bytes]:
            calls.append(x)
            return [bytes(2 * MiB)]

        calls: list[int] = []
        writer = cached(cache=big, prefix="limits", ttl=60)(fetch)
        reader = cached(cache=small, prefix="limits", ttl=60)(fetch)
        assert writer.cache_key(1) == reader.cache_key(1)
        writer(1)
        assert raw.exists(writer.cache_key(1)) == 1
        assert reader(1) == [bytes(2 * MiB)]
        assert calls == [1, 1]  # the reader computed: a miss
    finally:
        big.close()
        small.close()


def test_value_inflating_beyond_max_value_size_is_not_stored(
    server: EmbeddedServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A value whose compressed body fits but whose serialized size exceeds max_value_size is not
    stored (a reader with the same limit would refuse it), with one warning."""
    with RedisCaching(server.args(), max_value_size=1 * MiB) as small, caplog.at_level(
        logging.WARNING, logger="memo_redis"
    ):
        assert small.set("fits", [bytes(MiB // 2)])
        assert small.get("fits") == [bytes(MiB // 2)]
        assert not small.set("inflates", [bytes(2 * MiB)])
        assert raw.exists("inflates") == 0
    assert any("exceeds max_value_size" in r.getMessage() for r in caplog.records)


def test_declared_lengths_are_bounded_by_the_body() -> None:
    """A 5-byte body declaring a 4 G-item array or a 4 GiB string fails fast, allocating little."""
    import tracemalloc

    serializer = Serializer()
    tracemalloc.start()
    try:
        for body in (b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
                     b"\xc9\xff\xff\xff\xff\x01"):
            with pytest.raises(DecodeError):
                serializer.decode(0, body, max_size=8 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB


# --- fuzzing: nothing escapes a decorated function -----------------------------------------------


_VALID_VALUE = [(i, str(i) * 20, {i}, frozenset({-i}), 2**70 + i) for i in range(30)]


@pytest.fixture
def fuzzed(cache: RedisCaching, raw: redis.Redis) -> tuple[Any, str, bytes]:
    """A decorated function, its key, and the valid (compressed) envelope stored there."""

    @cached(cache=cache, prefix="fuzz", ttl=600)
    def fetch(x: int) -> Any:
        return _VALID_VALUE

    assert fetch(1) == _VALID_VALUE
    key = fetch.cache_key(1)
    valid = raw.get(key)
    assert valid is not None
    env = envelope.unpack(valid)
    assert env is not None and env.flags & FLAG_ZLIB
    return fetch, key, valid


def _mutate(data: st.DataObject, valid: bytes) -> bytes:
    value = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(["flip", "flags", "truncate", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(value) - 1, 0)), label="position")
        if op == "flip" and value:
            value[pos] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "flags" and len(value) > 1:
            value[1] = data.draw(st.integers(0, 255), label="flags")
        elif op == "truncate":
            del value[pos:]
        elif op == "insert":
            value[pos:pos] = data.draw(st.binary(min_size=1, max_size=16), label="inserted")
        elif op == "delete":
            del value[pos : pos + data.draw(st.integers(1, 16), label="length")]
    return bytes(value)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_and_mutated_values_never_raise_out_of_a_decorated_function(
    fuzzed: tuple[Any, str, bytes], raw: redis.Redis, cache: RedisCaching, data: st.DataObject
) -> None:
    """Random bytes and random mutations of a valid envelope at a decorated key (and read with
    get/get_many) never raise: each read is a value or a miss."""
    fetch, key, valid = fuzzed
    stored = data.draw(
        st.one_of(
            st.binary(max_size=256),
            st.binary(max_size=64).map(lambda b: b"\xc1" + b),
            st.just(valid).map(lambda v: v),
        ),
        label="base",
    )
    if stored == valid or data.draw(st.booleans(), label="mutate"):
        stored = _mutate(data, valid if stored == valid else stored)
    raw.set(key, stored)
    fetch(1)
    raw.set(key, stored)
    cache.get(key)
    cache.get_many([key])


# --- arguments nested too deep or recursive -------------------------------------------------------


def _fn() -> Any:
    # No server: the key is derived (and refused) before anything talks to Redis.
    cache = RedisCaching("redis://127.0.0.1:9/0")

    @cached(cache=cache, ttl=60)
    def lookup(query: Any, limit: int = 10) -> str:
        return "ran"

    return lookup


@dataclass
class Node:
    """A dataclass argument that can point back to itself."""

    child: Any = None


def _recursive_values() -> list[Any]:
    as_list: list[Any] = []
    as_list.append(as_list)
    as_dict: dict[str, Any] = {}
    as_dict["self"] = [as_dict]
    node = Node()
    node.child = (node,)
    return [as_list, as_dict, node]


@pytest.mark.parametrize("kind", [list, tuple, frozenset])
def test_arguments_nested_too_deep_raise_a_type_error_naming_the_parameter(kind: type) -> None:
    """An argument nested MAX_DEPTH + 1 (or 5000) levels raises TypeError naming the parameter and
    the limit, never RecursionError; MAX_DEPTH levels make a key."""
    lookup = _fn()
    assert KEY_MAX_DEPTH == MAX_DEPTH
    assert lookup.cache_key(_nested(KEY_MAX_DEPTH, kind))
    for levels in (KEY_MAX_DEPTH + 1, 5000):
        with pytest.raises(TypeError, match=r"parameter 'query'.*nested deeper than 64 levels"):
            lookup.cache_key(_nested(levels, kind))
        with pytest.raises(TypeError, match="parameter 'query'"):
            lookup(_nested(levels, kind))
    with pytest.raises(TypeError, match=r"parameter 'rows'.*nested deeper than 64 levels"):
        canonical_bytes([("rows", {"a": _nested(KEY_MAX_DEPTH, list)})])


@pytest.mark.parametrize("index", [0, 1, 2], ids=["list", "dict", "dataclass"])
def test_recursive_arguments_raise_a_type_error_naming_the_parameter(index: int) -> None:
    """A value that contains itself raises TypeError naming the parameter, never RecursionError."""
    lookup = _fn()
    value = _recursive_values()[index]
    with pytest.raises(TypeError, match=r"parameter 'query'.*contains itself"):
        lookup.cache_key(value)
    with pytest.raises(TypeError, match=r"parameter 'query'.*contains itself"):
        lookup(value)


def test_keys_of_ordinary_arguments_are_unchanged_by_the_depth_check() -> None:
    """Keys of ordinary and MAX_DEPTH-deep arguments are stable (the key format is unchanged)."""
    assert canonical_bytes([("table", "users"), ("limit", 10)]) == (
        b"\x94\xa5table\xa5users\xa5limit\n"
    )
    deep = [("q", _nested(KEY_MAX_DEPTH, list)), ("t", ((1,),)), ("d", {"a": {1, 2}})]
    assert canonical_bytes(deep) == canonical_bytes(deep)
