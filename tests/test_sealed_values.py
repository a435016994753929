"""Signed and encrypted values in the cache: ``RedisCaching(signing_key=..., encryption_key=...)``.

Real private servers (the session server; one test on a local cluster). Every value written by a
cache with a key is a sealed envelope bound to its logical key name; a value that does not open
(a bit flipped anywhere, copied from another key, written without the key, sealed with a removed
key) is a miss, counted in ``rejected_values``, logged once per key, never deserialized. Pure
tests at the end: the environment variables, configuration errors and the pinned layout.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from support import Driver, protocol

from memo_redis import RedisArgs, RedisCaching, cached, config, envelope, set_default_cache
from memo_redis.embedded import EmbeddedServer
from memo_redis.engine import build_sealer
from memo_redis.exceptions import ConfigError
from memo_redis.protocol.values import ValueCodec
from memo_redis.sealing import EncryptionKeys, Sealer, SigningKeys, TamperedValue
from memo_redis.serialization import Serializer

SIGN_A = b"signing-key-A-of-32-bytes-long..."
SIGN_B = b"signing-key-B-of-32-bytes-long..."
SIGN_C = b"signing-key-C-of-32-bytes-long..."
ENC = bytes(range(32))
ENC_B64 = base64.b64encode(ENC).decode()
MARKER = "plaintext-marker-7f3a"
HEAD = 2 + envelope.STAMP_SIZE  # 0xC1, flags, stamp: then the seal
SEAL_AT = HEAD  # 0xF5 | mode | key id (4) | ...
SECRETS = (SIGN_A, SIGN_B, SIGN_C, ENC)


def signing_id(key: bytes) -> bytes:
    return bytes.fromhex(SigningKeys.parse(key, source="test").key_ids[0])


def encryption_id(key: bytes) -> bytes:
    return bytes.fromhex(EncryptionKeys.parse(key, source="test").key_ids[0])


def assert_sealed(raw_value: bytes, mode: int, key_id: bytes) -> None:
    """``raw_value`` is a sealed envelope: 0xC1, FLAG_SEALED, stamp, 0xF5, mode, key id."""
    assert raw_value[:2] == envelope.SEALED_HEAD
    assert raw_value[SEAL_AT] == 0xF5
    assert raw_value[SEAL_AT + 1] == mode
    assert raw_value[SEAL_AT + 2: SEAL_AT + 6] == key_id


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret.decode("latin-1") not in text
        assert base64.b64encode(secret).decode() not in text
    assert ENC_B64 not in text


@pytest.fixture
def make(server: EmbeddedServer, raw: redis.Redis) -> Iterator[Callable[..., RedisCaching]]:
    """Build RedisCaching objects on the session server (emptied first); closed at the end."""
    made: list[RedisCaching] = []

    def build(**options: Any) -> RedisCaching:
        cache = RedisCaching(server.args(), **options)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.close()


# --- a probe that runs code when unpickled -------------------------------------------------------

UNPICKLED: list[str] = []


def _detonate(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Detonator:
    """Unpickling it calls ``_detonate``: proof of deserialization."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_detonate, ("unpickled",))


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
def test_signed_round_trip_key_value_api(make: Callable[..., RedisCaching], raw: redis.Redis,
                                         driver: Driver, serializer: str) -> None:
    """set/get/set_many/get_many round-trip signed values; JSON is sealed too, not plain text."""
    cache = make(signing_key=SIGN_A, serializer=serializer)
    assert driver.call(cache, "set", "kv:one", {"n": 1}) is True
    assert driver.call(cache, "get", "kv:one") == {"n": 1}
    assert driver.call(cache, "set_many", {"kv:two": [2], "kv:three": "3"}) is True
    assert driver.call(cache, "get_many", ["kv:one", "kv:two", "kv:three", "kv:none"]) == {
        "kv:one": {"n": 1}, "kv:two": [2], "kv:three": "3"}
    for key in ("kv:one", "kv:two", "kv:three"):
        assert_sealed(raw.get(key), 0x01, signing_id(SIGN_A))
    assert cache.rejected_values == 0


def test_signed_round_trip_decorated(make: Callable[..., RedisCaching], raw: redis.Redis,
                                     driver: Driver) -> None:
    """A decorated function's values are signed: misses store, hits open; .many() and refresh()
    write signed values too; the counters see plain hits and misses."""
    cache = make(signing_key=SIGN_A)
    calls: list[int] = []

    def rows(n: int) -> list[dict[str, int]]:
        calls.append(n)
        return [{"id": i} for i in range(n)]

    fn = cached(cache=cache, early_refresh=True)(driver.define(rows))
    assert driver.call_fn(fn, 3) == driver.call_fn(fn, 3) == [{"id": i} for i in range(3)]
    assert calls == [3]
    assert driver.handle(fn.many, [4, 3]) == [
        [{"id": i} for i in range(4)], [{"id": i} for i in range(3)]]
    assert calls == [3, 4]
    driver.handle(fn.refresh, 3)
    assert calls == [3, 4, 3]
    for n in (3, 4):
        assert_sealed(raw.get(fn.cache_key(n)), 0x01, signing_id(SIGN_A))
    info = fn.cache_info()
    assert (info.hits, info.misses, info.errors) == (2, 2, 0)
    # The fingerprint and the early-refresh data travel inside the seal and come back.
    key = fn.cache_key(3)
    look = protocol(cache).lookup(key)
    assert look.envelope is not None
    assert look.envelope.flags & envelope.FLAG_FINGERPRINT
    assert look.envelope.flags & envelope.FLAG_EARLY
    assert look.envelope.expires_ms > 0
    assert cache.rejected_values == 0


def test_local_cache_serves_opened_values(make: Callable[..., RedisCaching],
                                          driver: Driver) -> None:
    """local=True keeps the opened value; a signed cache's L1 hits as usual."""
    cache = make(signing_key=SIGN_A)
    fn = cached(cache=cache, local=True)(driver.define(lambda n: n * 2))
    assert [driver.call_fn(fn, 5) for _ in range(3)] == [10, 10, 10]
    assert fn.cache_info().misses == 1


# --- tampering -----------------------------------------------------------------------------------


def test_every_bit_flip_is_a_miss_and_never_unpickled(make: Callable[..., RedisCaching],
                                                      raw: redis.Redis) -> None:
    """pickle + signing key: a bit flipped anywhere in the stored value is a miss, never an
    exception, and the payload (which runs code when unpickled) is never unpickled; outside the
    stamp (which readers check against the generations) every flip is counted as rejected."""
    cache = make(signing_key=SIGN_A, serializer="pickle")
    assert cache.set("probe:key", Detonator()) is True
    UNPICKLED.clear()
    assert cache.get("probe:key") == "unpickled"  # the intact value does run code when read
    assert UNPICKLED == ["unpickled"]
    UNPICKLED.clear()
    good = raw.get("probe:key")
    for position in range(len(good)):
        for bit in range(8):
            flipped = bytearray(good)
            flipped[position] ^= 1 << bit
            raw.set("probe:key", bytes(flipped))
            before = cache.rejected_values
            assert cache.get("probe:key", "miss") == "miss", (position, bit)
            in_stamp = 2 <= position < HEAD
            assert cache.rejected_values == before + (not in_stamp), (position, bit)
    assert UNPICKLED == []
    raw.set("probe:key", good)
    assert cache.get("probe:key") == "unpickled"


def test_bit_flips_in_a_decorated_value_recompute(make: Callable[..., RedisCaching],
                                                  raw: redis.Redis, driver: Driver) -> None:
    """A decorated pickle function whose stored value was altered recomputes (a miss), and the
    altered value is never unpickled."""
    cache = make(signing_key=SIGN_A, serializer="pickle")
    runs: list[int] = []

    def probe(n: int) -> Any:
        runs.append(n)
        return Detonator()

    fn = cached(cache=cache)(driver.define(probe))
    assert driver.call_fn(fn, 1) is not None
    key = fn.cache_key(1)
    good = raw.get(key)
    for position in (0, 1, HEAD, HEAD + 1, HEAD + 3, len(good) // 2, len(good) - 1):
        UNPICKLED.clear()
        flipped = bytearray(good)
        flipped[position] ^= 0x04
        raw.set(key, bytes(flipped))
        driver.call_fn(fn, 1)  # recomputed and stored again
        assert UNPICKLED == [], position
    assert len(runs) == 8
    assert fn.cache_info().misses == 8
    assert fn.cache_info().errors == 0


def test_value_copied_from_another_key_is_a_miss(make: Callable[..., RedisCaching],
                                                 raw: redis.Redis, driver: Driver,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A signed value copied to another key (same scope, so the stamp matches) is a miss,
    counted and logged once per key; decorated entries too."""
    cache = make(signing_key=SIGN_A)
    driver.call(cache, "set", "kv:a", "value of a")
    driver.call(cache, "set", "kv:b", "value of b")
    raw.set("kv:b", raw.get("kv:a"))
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        assert driver.call(cache, "get", "kv:b", "miss") == "miss"
        assert driver.call(cache, "get", "kv:b", "miss") == "miss"
    assert driver.call(cache, "get", "kv:a") == "value of a"
    assert cache.rejected_values == 2
    warnings = [r.getMessage() for r in caplog.records if "kv:b" in r.getMessage()]
    assert len(warnings) == 1
    assert "seal" in warnings[0]
    assert_no_secrets(caplog.text)

    runs: list[int] = []

    def double(n: int) -> int:
        runs.append(n)
        return n * 2

    fn = cached(cache=cache)(driver.define(double))
    assert driver.call_fn(fn, 1) == 2
    assert driver.call_fn(fn, 2) == 4
    raw.set(fn.cache_key(2), raw.get(fn.cache_key(1)))
    assert driver.call_fn(fn, 2) == 4
    assert runs == [1, 2, 2]
    assert cache.rejected_values == 3


def test_value_written_without_the_key_is_a_miss(make: Callable[..., RedisCaching],
                                                 raw: redis.Redis, driver: Driver,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Envelopes and plain JSON written by a cache without the key, and values signed with
    another key, are misses (counted, logged once per key) for a signing cache."""
    plain = make()
    plain_json = make(serializer="json")
    other = make(signing_key=SIGN_B)
    signed = make(signing_key=SIGN_A)
    signed_json = make(signing_key=SIGN_A, serializer="json")
    driver.call(plain, "set", "w:envelope", [1])
    driver.call(plain_json, "set", "w:json", [2])
    assert raw.get("w:json") == b"[2]"  # the seed's plain format
    driver.call(other, "set", "w:other", [3])
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        for reader in (signed, signed_json):
            for key in ("w:envelope", "w:json", "w:other"):
                assert driver.call(reader, "get", key, "miss") == "miss", key
                assert driver.call(reader, "get", key, "miss") == "miss", key
    assert signed.rejected_values == signed_json.rejected_values == 6
    for key in ("w:envelope", "w:json", "w:other"):
        assert len([r for r in caplog.records if f"'{key}'" in r.getMessage()]) == 2  # 1 each
    assert_no_secrets(caplog.text)
    # A decorated function of the plain cache wrote its entry: the signing cache recomputes.
    runs: list[int] = []

    def triple(n: int) -> int:
        runs.append(n)
        return n * 3

    unsigned_fn = cached(cache=plain, prefix="w:fn")(driver.define(triple))
    signed_fn = cached(cache=signed, prefix="w:fn")(driver.define(triple))
    assert driver.call_fn(unsigned_fn, 1) == 3
    assert driver.call_fn(signed_fn, 1) == 3
    assert runs == [1, 1]


def test_sealed_values_are_misses_for_a_cache_without_keys(make: Callable[..., RedisCaching],
                                                           driver: Driver) -> None:
    """A cache without keys does not read sealed values (it cannot check them): misses."""
    signed = make(signing_key=SIGN_A)
    encrypted = make(encryption_key=ENC)
    plain = make()
    driver.call(signed, "set", "s:signed", 1)
    driver.call(encrypted, "set", "s:encrypted", 2)
    assert driver.call(plain, "get", "s:signed", "miss") == "miss"
    assert driver.call(plain, "get", "s:encrypted", "miss") == "miss"
    assert plain.rejected_values == 2


# --- rotation ------------------------------------------------------------------------------------


def test_signing_key_rotation(make: Callable[..., RedisCaching], raw: redis.Redis,
                              driver: Driver) -> None:
    """Values signed by the previous first key hit while it is second in the list; new values
    are signed by the new first key; once the old key is removed its values are misses."""
    old = make(signing_key=SIGN_A)
    driver.call(old, "set", "r:old", "signed by A")
    rotated = make(signing_key=[SIGN_B, SIGN_A])
    assert driver.call(rotated, "get", "r:old") == "signed by A"
    driver.call(rotated, "set", "r:new", "signed by B")
    assert_sealed(raw.get("r:new"), 0x01, signing_id(SIGN_B))
    assert driver.call(old, "get", "r:new", "miss") == "miss"  # A alone cannot check B's
    done = make(signing_key=[SIGN_B])
    assert driver.call(done, "get", "r:new") == "signed by B"
    assert driver.call(done, "get", "r:old", "miss") == "miss"
    assert done.rejected_values == 1
    assert rotated.rejected_values == 0


def test_encryption_key_rotation(make: Callable[..., RedisCaching], driver: Driver) -> None:
    """The same for encryption keys (base64 text, comma-separated like the variable)."""
    new = bytes(range(100, 132))
    old = make(encryption_key=ENC)
    driver.call(old, "set", "r:secret", "by the old key")
    both = ",".join(base64.b64encode(k).decode() for k in (new, ENC))
    rotated = make(encryption_key=both)
    assert driver.call(rotated, "get", "r:secret") == "by the old key"
    done = make(encryption_key=new)
    assert driver.call(done, "get", "r:secret", "miss") == "miss"


# --- encryption ----------------------------------------------------------------------------------


def test_encryption_round_trip_and_no_plaintext_in_redis(make: Callable[..., RedisCaching],
                                                         raw: redis.Redis,
                                                         driver: Driver) -> None:
    """Encrypted values round-trip through the key/value API and decorated functions; their
    plaintext never appears in Redis (a signed value, the control, shows it)."""
    signed = make(signing_key=SIGN_A)
    driver.call(signed, "set", "e:control", {"text": MARKER})
    assert MARKER.encode() in raw.get("e:control")  # signing does not hide anything

    cache = make(encryption_key=ENC_B64)
    assert driver.call(cache, "set", "e:kv", {"text": MARKER}) is True
    assert driver.call(cache, "get", "e:kv") == {"text": MARKER}

    def reveal(n: int) -> dict[str, Any]:
        return {"text": MARKER, "n": n}

    fn = cached(cache=cache)(driver.define(reveal))
    assert driver.call_fn(fn, 1) == driver.call_fn(fn, 1) == {"text": MARKER, "n": 1}
    assert fn.cache_info().hits == 1
    for key in ("e:kv", fn.cache_key(1)):
        stored = raw.get(key)
        assert_sealed(stored, 0x02, encryption_id(ENC))
        assert MARKER.encode() not in stored
    everything = b"".join(raw.get(k) or b"" for k in raw.keys("*") if raw.type(k) == b"string")
    assert MARKER.encode() not in everything.replace(raw.get("e:control"), b"")


def test_ciphertext_moved_to_another_key_is_a_miss(make: Callable[..., RedisCaching],
                                                   raw: redis.Redis, driver: Driver) -> None:
    """The key name is authenticated data: a ciphertext moved to another key does not open."""
    cache = make(encryption_key=ENC)
    driver.call(cache, "set", "m:a", "secret a")
    driver.call(cache, "set", "m:b", "secret b")
    raw.set("m:b", raw.get("m:a"))
    assert driver.call(cache, "get", "m:b", "miss") == "miss"
    assert cache.rejected_values == 1
    flipped = bytearray(raw.get("m:a"))
    flipped[-1] ^= 1
    raw.set("m:a", bytes(flipped))
    assert driver.call(cache, "get", "m:a", "miss") == "miss"
    assert cache.rejected_values == 2


class CountingSealer:
    """Stands in front of a cache's Sealer and counts the values it opens (the cryptography)."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self.opened = 0

    def open_at(self, key_name: bytes, data: bytes, start: int) -> tuple[bytes, int, int]:
        self.opened += 1
        return self.sealer.open_at(key_name, data, start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sealer, name)


@pytest.mark.parametrize("keys", [{"signing_key": SIGN_A}, {"encryption_key": ENC}],
                         ids=["signed", "encrypted"])
def test_the_same_bytes_read_again_are_not_checked_again_any_change_is(
        make: Callable[..., RedisCaching], raw: redis.Redis, driver: Driver,
        keys: dict[str, bytes]) -> None:
    """Reading the stored bytes that opened last time skips the seal's cryptography; a flipped
    bit, or a value copied from another key, is checked (and rejected) on every read; the value
    that opened before is served again without a check once it is back."""
    cache = make(**keys)
    codec = cache.engine.codec
    counting = CountingSealer(codec.sealer)  # type: ignore[arg-type]
    codec.sealer = counting  # type: ignore[assignment]
    driver.call(cache, "set", "o:a", {"n": 1})
    driver.call(cache, "set", "o:b", {"n": 2})
    for _ in range(3):
        assert driver.call(cache, "get", "o:a") == {"n": 1}
    assert counting.opened == 1
    good = raw.get("o:a")
    flipped = bytearray(good)
    flipped[-5] ^= 0x10
    raw.set("o:a", bytes(flipped))
    for reads in (2, 3):
        assert driver.call(cache, "get", "o:a", "miss") == "miss"
        assert counting.opened == reads  # a rejected value is never remembered
    assert driver.call(cache, "get", "o:b") == {"n": 2}
    assert counting.opened == 4
    raw.set("o:a", raw.get("o:b"))  # opened at o:b, so not at o:a
    assert driver.call(cache, "get", "o:a", "miss") == "miss"
    assert counting.opened == 5
    assert cache.rejected_values == 3
    raw.set("o:a", good)
    assert driver.call(cache, "get", "o:a") == {"n": 1}
    assert counting.opened == 5


def test_encrypt_per_function_on_a_signing_cache(make: Callable[..., RedisCaching],
                                                 raw: redis.Redis, driver: Driver) -> None:
    """encrypt=False on the cache signs by default; @cached(encrypt=True) encrypts one function
    (its calls, .many() and refresh()); both read back."""
    cache = make(signing_key=SIGN_A, encryption_key=ENC, encrypt=False)

    def public(n: int) -> str:
        return f"public {n} {MARKER}"

    def private(n: int) -> str:
        return f"private {n} {MARKER}"

    public_fn = cached(cache=cache)(driver.define(public))
    private_fn = cached(cache=cache, encrypt=True)(driver.define(private))
    for _ in range(2):
        assert driver.call_fn(public_fn, 1) == f"public 1 {MARKER}"
        assert driver.call_fn(private_fn, 1) == f"private 1 {MARKER}"
    assert driver.handle(private_fn.many, [2]) == [f"private 2 {MARKER}"]
    driver.handle(private_fn.refresh, 3)
    driver.call(cache, "set", "p:kv", MARKER)
    assert_sealed(raw.get(public_fn.cache_key(1)), 0x01, signing_id(SIGN_A))
    assert_sealed(raw.get("p:kv"), 0x01, signing_id(SIGN_A))
    for n in (1, 2, 3):
        stored = raw.get(private_fn.cache_key(n))
        assert_sealed(stored, 0x02, encryption_id(ENC))
        assert MARKER.encode() not in stored
    assert public_fn.cache_info().hits == private_fn.cache_info().hits == 1
    assert driver.call_fn(private_fn, 3) == f"private 3 {MARKER}"

    # encrypt=False on a function of a cache that encrypts: signed.
    encrypting = make(signing_key=SIGN_A, encryption_key=ENC)
    signed_fn = cached(cache=encrypting, encrypt=False)(driver.define(public))
    assert driver.call_fn(signed_fn, 4) == f"public 4 {MARKER}"
    assert_sealed(raw.get(signed_fn.cache_key(4)), 0x01, signing_id(SIGN_A))


def test_encrypt_needs_an_encryption_key(make: Callable[..., RedisCaching],
                                         driver: Driver) -> None:
    """@cached(encrypt=True) without an encryption key: a ConfigError naming encryption_key and
    MEMO_REDIS_ENCRYPTION_KEY, at decoration with cache=, else at the first call."""
    signing_only = make(signing_key=SIGN_A)
    with pytest.raises(ConfigError, match=r"encryption_key.*MEMO_REDIS_ENCRYPTION_KEY"):
        cached(cache=signing_only, encrypt=True)
    with pytest.raises(ConfigError, match="encryption_key"):
        cached(cache=make(), encrypt=True)
    with pytest.raises(ConfigError, match=r"signing_key.*MEMO_REDIS_SIGNING_KEY"):
        cached(cache=make(encryption_key=ENC), encrypt=False)
    with pytest.raises(ConfigError, match="encrypt must be"):
        cached(encrypt="yes")  # type: ignore[call-overload]

    runs: list[int] = []

    def secret(n: int) -> int:
        runs.append(n)
        return n

    fn = cached(encrypt=True)(driver.define(secret))  # no cache=: checked at the first call
    set_default_cache(signing_only)
    try:
        with pytest.raises(ConfigError, match="MEMO_REDIS_ENCRYPTION_KEY"):
            driver.call_fn(fn, 1)
        assert runs == []
        set_default_cache(make(signing_key=SIGN_A, encryption_key=ENC, encrypt=False))
        assert driver.call_fn(fn, 1) == driver.call_fn(fn, 1) == 1
        assert runs == [1]
    finally:
        set_default_cache(None)


# --- pickle --------------------------------------------------------------------------------------


def test_pickle_needs_a_key(server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """serializer="pickle" (or a pickle Serializer) refuses to start without a key."""
    monkeypatch.delenv("MEMO_REDIS_SIGNING_KEY", raising=False)
    monkeypatch.delenv("MEMO_REDIS_ENCRYPTION_KEY", raising=False)
    for serializer in ("pickle", Serializer("pickle")):
        with pytest.raises(ConfigError, match=r"pickle.*signing_key.*MEMO_REDIS_SIGNING_KEY"):
            RedisCaching(server.args(), serializer=serializer)
    RedisCaching(server.args(), serializer="pickle", signing_key=SIGN_A).close()
    RedisCaching(server.args(), serializer="pickle", encryption_key=ENC).close()
    monkeypatch.setenv("MEMO_REDIS_SIGNING_KEY", SIGN_A.decode())
    with RedisCaching(server.args(), serializer="pickle") as cache:
        assert cache.engine.sealer is not None


def test_pickle_cache_with_a_key_round_trips(make: Callable[..., RedisCaching],
                                             driver: Driver) -> None:
    """Arbitrary objects round-trip through a signed pickle cache."""
    cache = make(signing_key=SIGN_A, serializer="pickle")
    value = {"set": {1, 2}, "bytes": b"\x00", "exc": ValueError("x").args}
    driver.call(cache, "set", "pk:1", value)
    assert driver.call(cache, "get", "pk:1") == value


# --- a cluster: the logical key name -------------------------------------------------------------


@pytest.mark.cluster
def test_sealed_on_a_cluster_binds_the_logical_key_name(memo_redis_binary: str) -> None:
    """On Redis Cluster the stored names are hash-tagged; the seal binds the logical name (what
    users and patterns see), so values open where they are read, with either layout."""
    from memo_redis.servers import LocalCluster

    with LocalCluster(memo_redis_binary, replicas_per_primary=0) as cluster:
        env = {"REDIS_CLUSTER": "true", "REDIS_CLUSTER_NODES": cluster.startup_nodes,
               "REDIS_SOCKET_TIMEOUT": "10", "REDIS_SOCKET_CONNECT_TIMEOUT": "10"}
        with RedisCaching(RedisArgs.from_env(env), signing_key=SIGN_A, strict=True) as cache:
            fn = cached(cache=cache, prefix="sql:{table}")(lambda table, n: [table, n])
            assert fn("users", 1) == fn("users", 1) == ["users", 1]
            assert fn.cache_info().hits == 1
            cache.set("kv:1", "one")
            assert cache.get("kv:1") == "one"
            physical = fn.cache_key("users", 1)  # hash-tagged on a cluster
            logical = cache.layout.logical(physical.encode())
            assert physical.encode() != logical
            with contextlib.closing(cluster.client()) as admin:
                stored = admin.get(physical)
            sealer = cache.engine.sealer
            assert sealer is not None
            assert sealer.open(logical, stored[HEAD:])
            with pytest.raises(TamperedValue):
                sealer.open(physical.encode(), stored[HEAD:])
            assert cache.rejected_values == 0


# --- pure: the environment, configuration, the layout --------------------------------------------


def test_keys_from_the_environment() -> None:
    """MEMO_REDIS_SIGNING_KEY and MEMO_REDIS_ENCRYPTION_KEY (comma-separated) configure the
    sealer when the parameters are not given; parameters win; empty counts as unset."""
    assert {"MEMO_REDIS_SIGNING_KEY", "MEMO_REDIS_ENCRYPTION_KEY"} <= set(
        config.ENVIRONMENT_VARIABLES)
    assert {"REDIS_URL", "REDIS_PASSWORD"} <= set(config.ENVIRONMENT_VARIABLES)
    assert config.sealing_keys_from_env({}) == {}
    assert build_sealer(environ={}) is None
    assert build_sealer(environ={"MEMO_REDIS_SIGNING_KEY": "", "MEMO_REDIS_ENCRYPTION_KEY": ""}
                        ) is None
    rotated = f"{SIGN_B.decode()}, {SIGN_A.decode()}"
    sealer = build_sealer(environ={"MEMO_REDIS_SIGNING_KEY": rotated})
    assert sealer is not None and sealer.signing is not None and not sealer.encrypts
    assert sealer.signing.key_ids == (signing_id(SIGN_B).hex(), signing_id(SIGN_A).hex())
    sealer = build_sealer(environ={"MEMO_REDIS_ENCRYPTION_KEY": ENC_B64})
    assert sealer is not None and sealer.encrypts and sealer.signing is None
    sealer = build_sealer(SIGN_C, environ={"MEMO_REDIS_SIGNING_KEY": rotated,
                                           "MEMO_REDIS_ENCRYPTION_KEY": ENC_B64}, encrypt=False)
    assert sealer is not None and not sealer.encrypts
    assert sealer.signing is not None and sealer.signing.key_ids == (signing_id(SIGN_C).hex(),)
    assert sealer.encryption is not None


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"MEMO_REDIS_SIGNING_KEY": "short-secret"}, "MEMO_REDIS_SIGNING_KEY"),
        ({"MEMO_REDIS_SIGNING_KEY": f"{SIGN_A.decode()},,"}, "MEMO_REDIS_SIGNING_KEY"),
        ({"MEMO_REDIS_SIGNING_KEY": "   "}, "MEMO_REDIS_SIGNING_KEY"),
        ({"MEMO_REDIS_ENCRYPTION_KEY": "not base64 at all!"}, "MEMO_REDIS_ENCRYPTION_KEY"),
        ({"MEMO_REDIS_ENCRYPTION_KEY": base64.b64encode(b"s3cret-16-bytes!").decode()},
         "MEMO_REDIS_ENCRYPTION_KEY"),
        ({"MEMO_REDIS_ENCRYPTION_KEY": ENC.hex()}, "MEMO_REDIS_ENCRYPTION_KEY"),
    ],
    ids=["short", "empty-item", "blank", "not-base64", "16-bytes", "hex"],
)
def test_bad_keys_in_the_environment(environ: dict[str, str], variable: str) -> None:
    """A bad value is a ConfigError naming the variable, never showing the value."""
    with pytest.raises(ConfigError, match=variable) as caught:
        build_sealer(environ=environ)
    message = str(caught.value)
    for value in environ.values():
        for item in value.split(","):
            if item.strip():
                assert item.strip() not in message


def test_configuration_errors_never_show_keys(server: EmbeddedServer) -> None:
    """Bad parameters are ConfigErrors naming the parameter; keys never appear in reprs."""
    with pytest.raises(ConfigError, match="signing_key") as short:
        RedisCaching(server.args(), signing_key=b"short secret")
    assert "short secret" not in str(short.value)
    with pytest.raises(ConfigError, match="encryption_key"):
        RedisCaching(server.args(), encryption_key=b"x" * 31)
    with pytest.raises(ConfigError, match="encrypt=True needs an encryption key"):
        RedisCaching(server.args(), signing_key=SIGN_A, encrypt=True)
    with pytest.raises(ConfigError, match="encrypt=False needs signing keys"):
        RedisCaching(server.args(), encryption_key=ENC, encrypt=False)
    with pytest.raises(ConfigError, match="encrypt must be"):
        RedisCaching(server.args(), signing_key=SIGN_A, encrypt="no")  # type: ignore[arg-type]
    with RedisCaching(server.args(), signing_key=SIGN_A, encryption_key=ENC) as cache:
        shown = " ".join((repr(cache), str(cache), repr(cache.engine.sealer),
                          repr(cache.engine.codec.sealer_for(False))))
        assert_no_secrets(shown)


def test_sealed_layout_is_pinned() -> None:
    """The sealed envelope's bytes for a fixed key and value (signing is deterministic): head
    0xC1 0x20; then 0xF5 0x01, the key id, the inner flags, fingerprint, early data, body, and
    the HMAC over the key name. Without a sealer the codec writes the unsealed envelope."""
    sealer = Sealer(SigningKeys.parse(SIGN_A, source="test"))
    codec = ValueCodec(Serializer(), None, sealer)
    fingerprint = bytes(range(16))
    head, tail = codec.encode("sql:users:data:1", [1, 2, 3], fingerprint, (1_700_000_000_000, 250))
    assert head == b"\xc1\x20"
    inner = (b"\x18" + fingerprint + b"\x00\x00\x01\x8b\xcf\xe5h\x00\x00\x00\x00\xfa"
             + b"\x93\x01\x02\x03")
    assert tail[:6] == b"\xf5\x01" + signing_id(SIGN_A)
    assert tail[6:-32] == inner
    assert sealer.open(b"sql:users:data:1", tail) == inner
    assert tail.hex() == (
        "f5010e758a29" "18000102030405060708090a0b0c0d0e0f" "0000018bcfe56800000000fa" "93010203"
        "eadbb99f4b49e36775d01c5628205955273921d0d60d020631595a6f38d84924"
    )
    plain = ValueCodec(Serializer(), None)
    assert plain.encode("sql:users:data:1", [1, 2, 3], fingerprint, (1_700_000_000_000, 250)) == (
        envelope.pack_tail(0, b"\x93\x01\x02\x03", fingerprint, (1_700_000_000_000, 250)))
    assert ValueCodec(Serializer("json", compress_threshold=None), None).encode("k", [1]) == (
        b"", b"[1]")


def test_codec_opens_only_its_own_envelopes() -> None:
    """Pure decode checks: an opened envelope yields its value; a sealed envelope whose inner
    flags claim sealing again, or whose inner part is truncated, is rejected."""
    sealer = Sealer(SigningKeys.parse(SIGN_A, source="test"))
    codec = ValueCodec(Serializer(), None, sealer)
    stamp = envelope.compute_stamp([b"g"])
    head, tail = codec.encode("k:1", {"a": 1})
    assert codec.decode("k:1", head + stamp + tail, [b"g"], None)[0] == {"a": 1}
    nested = sealer.seal(b"k:1", bytes((envelope.FLAG_SEALED,)) + b"\x81\xa1a\x01")
    truncated = sealer.seal(b"k:1", bytes((envelope.FLAG_FINGERPRINT,)) + b"short")
    empty = sealer.seal(b"k:1", b"")
    for bad in (nested, truncated, empty):
        value, env = codec.decode("k:1", envelope.SEALED_HEAD + stamp + bad, [b"g"], None)
        assert (str(value), env) == ("MISS", None)
    assert codec.rejected == 3


def test_cli_get_shows_a_sealed_entry_without_decoding_it(make: Callable[..., RedisCaching],
                                                          server: EmbeddedServer) -> None:
    """``memo-redis get`` reports a sealed envelope as sealed (stamp checked), never decoded."""
    import json
    import subprocess
    import sys

    cache = make(encryption_key=ENC)
    cache.set("cli:secret", MARKER)
    done = subprocess.run(
        [sys.executable, "-m", "memo_redis", "--url", server.url, "get", "cli:secret", "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["format"], info["stamp_valid"], info["value"]) == ("sealed", True, None)
    assert MARKER not in done.stdout


def test_rejections_are_logged_once_per_key_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Rejected values log once per key, for the first 1024 keys; then one line says the rest
    are only counted. A truncated sealed value is rejected too."""
    codec = ValueCodec(Serializer(), None, Sealer(SigningKeys.parse(SIGN_A, source="test")))
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        for round_ in range(2):
            for index in range(1100):
                value, env = codec.decode(f"k:{index}", b"[1]", [b"g"], None)
                assert env is None and str(value) == "MISS", round_
        value, _ = codec.decode("k:short", envelope.SEALED_HEAD + b"0123", [b"g"], None)
        assert str(value) == "MISS"
    assert codec.rejected == 2201
    assert len(caplog.records) == 1024 + 1
    assert "no longer logged key by key" in caplog.records[-1].getMessage()
