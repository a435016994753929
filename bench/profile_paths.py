"""Where memo_redis's hit and miss paths spend their time, step by step.

Each step of the key path is timed on its own with ``time.perf_counter_ns``, using memo_redis's
own functions and the decorated function's precomputed plan, so the steps add up to what one
``@cached`` call costs:

* CPU-only steps: the *minimum* over many small batches (the cost without preemption; on a
  shared 2-vCPU machine medians mostly measure the neighbours);
* round trips: the median wall time over rounds, under the placement and transport current when
  :func:`profile` runs, and the calling thread's CPU time (minimum over rounds): the client's
  own work, without the wait for the server;
* server time: ``INFO commandstats`` (µs the server spent per command, no network) around a batch
  of each command.

A ``cProfile`` of the whole call is kept as text for what the step list does not name. This
module reaches into memo_redis internals (the wrapper's ``_self_core``, the engine's driver,
request builders and codec, the protocol's flows run with ``engine.sync.run``): it is a
measuring instrument, not an API user, and reports a step it can no longer run as NaN (with the
error) instead of stopping the suite.
"""

from __future__ import annotations

import cProfile
import io
import itertools
import math
import pstats
import re
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from memo_redis import envelope, keys, serialization
from memo_redis.backend.drivers import SyncDriver
from memo_redis.flight import Flights
from memo_redis.protocol import operations
from memo_redis.protocol.entries import stamp_of
from memo_redis.protocol.steps import Command

from .contenders import TTL_SECONDS
from .workload import LIMIT, ROWS, TABLE

_REPO_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_PATH_PREFIX = re.compile(r"/[^\s:()]*/(?:site-packages|lib/python3\.\d+)/")
_ZLIB = 0x04


class Steps:
    """Timed steps of one path, in µs per call; failures are kept as NaN plus an error line."""

    def __init__(self, cpu_batches: int, net_calls: int) -> None:
        self.cpu_batches = cpu_batches
        self.net_calls = net_calls
        self.us: dict[str, float] = {}
        self.client_cpu: dict[str, float] = {}
        """For round-trip steps: this thread's CPU µs per call (without the wait)."""
        self.errors: list[str] = []

    def _guard(self, name: str, fn: Callable[[], Any]) -> bool:
        try:
            fn()
        except Exception as exc:  # an instrument step that no longer fits memo_redis
            self.errors.append(f"{name}: {exc!r}")
            self.us[name] = math.nan
            return False
        return True

    def cpu(self, name: str, fn: Callable[[], Any], batch: int = 200) -> None:
        """Minimum over batches of the mean µs per call."""
        if not self._guard(name, fn):
            return
        best = math.inf
        for _ in range(self.cpu_batches):
            start = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            best = min(best, (time.perf_counter_ns() - start) / batch)
        self.us[name] = best / 1000.0

    def net(self, name: str, fn: Callable[[], Any], rounds: int = 10) -> None:
        """Wall: median over rounds of the mean µs per call; client CPU: minimum over rounds."""
        if not self._guard(name, fn):
            return
        n = max(1, self.net_calls // rounds)
        means, cpus = [], []
        for _ in range(rounds):
            start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(n):
                fn()
            means.append((time.perf_counter_ns() - start) / n / 1000.0)
            cpus.append((time.thread_time_ns() - start_cpu) / n / 1000.0)
        self.us[name] = statistics.median(means)
        self.client_cpu[name] = min(cpus)

    def server(self, name: str, admin: Any, command: str, fn: Callable[[], Any],
               calls: int = 500) -> None:
        """µs the server spent per ``command`` (INFO commandstats) while ``fn`` ran ``calls``."""
        if not self._guard(name, fn):
            return
        admin.config_resetstat()
        for _ in range(calls):
            fn()
        stats = admin.info("commandstats").get(f"cmdstat_{command}", {})
        self.us[name] = float(stats.get("usec_per_call", math.nan))

    def derived(self, name: str, value: float) -> None:
        """A figure computed from other steps."""
        self.us[name] = value

    def rounded(self) -> dict[str, float]:
        """Steps rounded to ns."""
        return {k: round(v, 3) for k, v in self.us.items()}


def _cprofile(fn: Callable[[], Any], n: int, top: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    # no machine-specific paths in the results
    text = _PATH_PREFIX.sub("", out.getvalue()).replace(_REPO_ROOT, "")
    return "\n".join(line for line in text.splitlines() if line.strip())


def profile(fetch: Any, raw_client: Any, admin: Any, *, cpu_batches: int = 60,
            net_calls: int = 2000) -> dict[str, Any]:
    """Step-by-step costs (µs per call) of ``fetch``'s hit and miss paths, plus cProfile text.

    ``raw_client`` is a plain redis-py client on the same transport (the baseline's round trips),
    ``admin`` one used for ``INFO commandstats``.
    """
    hit = _profile_hit(fetch, raw_client, admin, cpu_batches, net_calls)
    miss = _profile_miss(fetch, raw_client, admin, cpu_batches, net_calls // 2)
    pages = itertools.count(50_000_000)
    return {
        "errors": hit.errors + miss.errors,
        "hit_us": hit.rounded(),
        "miss_us": miss.rounded(),
        "hit_client_cpu_us": {k: round(v, 3) for k, v in hit.client_cpu.items()},
        "miss_client_cpu_us": {k: round(v, 3) for k, v in miss.client_cpu.items()},
        "cprofile_hit": _cprofile(lambda: fetch(TABLE, LIMIT), 5000),
        "cprofile_miss": _cprofile(lambda: fetch(TABLE, LIMIT, next(pages)), 2000),
    }


def _profile_hit(fetch: Any, raw_client: Any, admin: Any, cpu_batches: int, net_calls: int
                 ) -> Steps:
    core = fetch._self_core
    plan = core.plan
    engine = core.resolve().engine
    sync, requests = engine.sync, engine.requests
    client = engine.client
    namespace = engine.namespace
    args: tuple[Any, ...] = (TABLE, LIMIT)
    kwargs: dict[str, Any] = {}
    fetch(*args)  # the hot entry exists
    binder = plan.plain
    bound = binder.bind(args, kwargs)
    items = binder.key_items(bound)
    data = keys.canonical_bytes(items)
    key, fingerprint = core.key(engine, None, args, kwargs)
    lookup_keys = engine.layout.lookup_keys(key)
    raws = client.execute_command("MGET", *lookup_keys, NEVER_DECODE=True)
    gens, value = raws[:-1], raws[-1]
    env = envelope.unpack(value)
    assert env is not None, "the hot entry is not an envelope"
    body = zlib.decompress(env.body) if env.flags & _ZLIB else env.body
    plain = msgpack.packb(ROWS)
    raw_client.set("profile:raw", plain)
    no_io = _gate_only(engine)
    gate_step = Command("profile", ("PING",))

    s = Steps(cpu_batches, net_calls)
    s.net("whole @cached hit call", lambda: fetch(*args))
    s.net("raw GET + msgpack.unpackb (the baseline)",
          lambda: msgpack.unpackb(raw_client.get("profile:raw")))
    s.net("driver lookup (MGET round trip + parse)", lambda: sync.lookup(key, fingerprint))
    s.cpu("wrapt dispatch only (FunctionWrapper -> plain fn)", _wrapt_probe())
    s.cpu("stats counter (+1 under a lock)", lambda: core.stats.hit())
    s.cpu("caching_disabled ContextVar get", _disabled_probe())
    s.cpu("derive key (total)", lambda: core.key(engine, None, args, kwargs))
    s.cpu("  ArgumentBinder.bind", lambda: binder.bind(args, kwargs))
    s.cpu("  key_items", lambda: binder.key_items(bound))
    s.cpu("  canonical_bytes (msgpack)", lambda: keys.canonical_bytes(items))
    s.cpu("  sha256 (fingerprint_of)", lambda: keys.fingerprint_of(data))
    s.cpu("  scope (template render)", lambda: plan.scope(namespace, bound))
    s.cpu("lookup step (Command: gens + key)", lambda: requests.lookup(key))
    s.cpu("  layout.lookup_keys", lambda: engine.layout.lookup_keys(key))
    s.cpu("execute gate (breaker, deferred, succeeded; no I/O)",
          lambda: no_io.execute(gate_step))
    s.net("redis-py MGET 5 keys (round trip)",
          lambda: client.execute_command("MGET", *lookup_keys, NEVER_DECODE=True))
    s.net("redis-py GET 1 key (round trip)", lambda: raw_client.get("profile:raw"))
    s.net("redis-py PING (round trip)", raw_client.ping)
    s.server("server: MGET 5 keys", admin, "mget",
             lambda: client.execute_command("MGET", *lookup_keys, NEVER_DECODE=True))
    s.server("server: GET 1 key", admin, "get", lambda: raw_client.get("profile:raw"))
    s.cpu("parse lookup (total)", lambda: requests.parse_lookup(key, raws, fingerprint))
    s.cpu("  envelope.unpack", lambda: envelope.unpack(value))
    s.cpu("  stamp check (sha1 of 4 gens)", lambda: envelope.compute_stamp(gens))
    s.cpu("  Serializer.decode (total)", lambda: engine.serializer.decode(env.flags, env.body))
    if env.flags & _ZLIB:
        s.cpu("    zlib.decompress", lambda: zlib.decompress(env.body))
    s.cpu("    msgpack.unpackb + ext_hook",
          lambda: msgpack.unpackb(body, ext_hook=serialization.msgpack_codec.ext_hook,
                                  strict_map_key=False))
    s.cpu("baseline msgpack.unpackb (uncompressed)", lambda: msgpack.unpackb(plain))
    u = s.us
    python_parts = (u["derive key (total)"] + u["lookup step (Command: gens + key)"]
                    + u["execute gate (breaker, deferred, succeeded; no I/O)"]
                    + u["parse lookup (total)"])
    s.derived("sum of memo_redis Python steps above", python_parts)
    s.derived("extra of MGET(5) over GET(1) round trip",
              u["redis-py MGET 5 keys (round trip)"] - u["redis-py GET 1 key (round trip)"])
    s.derived("memo_redis hit - baseline (measured)",
              u["whole @cached hit call"] - u["raw GET + msgpack.unpackb (the baseline)"])
    c = s.client_cpu
    s.derived("client CPU: memo_redis hit - baseline",
              c["whole @cached hit call"] - c["raw GET + msgpack.unpackb (the baseline)"])
    s.derived("client CPU: wrapper + read() plumbing (whole - lookup - derive)",
              c["whole @cached hit call"] - c["driver lookup (MGET round trip + parse)"]
              - u["derive key (total)"])
    s.derived("client CPU: lookup - MGET - parse - step (lookup plumbing)",
              c["driver lookup (MGET round trip + parse)"]
              - c["redis-py MGET 5 keys (round trip)"]
              - u["parse lookup (total)"] - u["lookup step (Command: gens + key)"])
    return s


def _gate_only(engine: Any) -> Any:
    """A sync driver of ``engine`` whose Redis I/O is a no-op: times the gate around a step."""

    class GateOnly(SyncDriver):
        def perform(self, step: Any) -> Any:
            return None

    return GateOnly(engine)


def _wrapt_probe() -> Callable[[], Any]:
    import wrapt

    def target() -> None:
        return None

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    probe: Callable[[], Any] = wrapt.FunctionWrapper(target, wrapper)
    return probe


def _disabled_probe() -> Callable[[], Any]:
    from memo_redis import context

    flag = getattr(context, "caching_disabled", None)
    if flag is None:
        def missing() -> None:
            raise LookupError("memo_redis.context.caching_disabled is gone")

        return missing
    get: Callable[[], Any] = flag.get
    return get


def _profile_miss(fetch: Any, raw_client: Any, admin: Any, cpu_batches: int, net_calls: int
                  ) -> Steps:
    core = fetch._self_core
    engine = core.resolve().engine
    sync, requests = engine.sync, engine.requests
    pages = itertools.count(60_000_000)
    key, fingerprint = core.key(engine, None, (TABLE, LIMIT, 7), {})
    look = sync.lookup(key, fingerprint)
    payload = msgpack.packb(ROWS)
    parts = engine.codec.encode(ROWS, fingerprint, None)
    assert parts is not None
    token = envelope.new_token()
    flights = Flights()
    locks = itertools.count()
    stores = itertools.count()
    sets = itertools.count()
    ttl_ms = TTL_SECONDS * 1000

    def fresh_stamp() -> bytes:
        look.lock_stamp = None  # stamp_of memoizes on the lookup
        return stamp_of(look)

    def store_once() -> Any:
        step = requests.store(f"{key}x{next(stores)}", parts, ttl_ms, look, None)
        return sync.perform(step)

    def raw_miss() -> Any:
        k = f"profile:miss:{next(sets)}"
        if raw_client.get(k) is None:
            raw_client.set(k, msgpack.packb(ROWS), ex=TTL_SECONDS)

    s = Steps(cpu_batches, net_calls)
    s.net("whole @cached miss call", lambda: fetch(TABLE, LIMIT, next(pages)))
    s.net("raw GET + SET EX (the baseline)", raw_miss)
    s.cpu("derive key", lambda: core.key(engine, None, (TABLE, LIMIT, 7), {}))
    s.net("lookup: MGET round trip + parse", lambda: sync.lookup(key, fingerprint))
    s.cpu("in-process Flights.run (no contention)", lambda: flights.run(("k", 1), 10.0, int))
    s.cpu("envelope.new_token (os.urandom)", envelope.new_token)
    s.cpu("lock stamp (sha1 of gens)", fresh_stamp)
    s.cpu("claim step (CLAIM script keys + args)", lambda: requests.claim(key, look, token))
    s.net("claim: arm fence + lock + re-read round trip",
          lambda: sync.run(operations.claim(engine, f"{key}{next(locks)}", look, token)))
    s.cpu("Serializer.encode (total)", lambda: engine.serializer.encode(ROWS), batch=50)
    s.cpu("  msgpack.packb", lambda: msgpack.packb(ROWS))
    s.cpu("  zlib.compress level 6", lambda: zlib.compress(payload, 6), batch=50)
    s.cpu("envelope.pack_tail", lambda: envelope.pack_tail(0, payload, fingerprint, None))
    s.cpu("store step (STORE script keys + args)",
          lambda: requests.store(key, parts, ttl_ms, look, token))
    s.net("store: EVALSHA round trip (checked, incl. args)", store_once)
    s.net("store flow (encode + store script round trip)",
          lambda: sync.run(operations.store(engine, f"{key}y{next(stores)}", ROWS, ttl_ms,
                                            seen=look, fingerprint=fingerprint)))
    s.server("server: store script (EVALSHA)", admin, "evalsha", store_once)
    s.server("server: SET EX", admin, "set",
             lambda: raw_client.set(f"profile:set:{next(sets)}", payload, ex=TTL_SECONDS))
    s.net("baseline SET EX round trip",
          lambda: raw_client.set(f"profile:set:{next(sets)}", payload, ex=TTL_SECONDS))
    s.net("baseline GET miss round trip", lambda: raw_client.get("profile:absent"))
    c = s.client_cpu
    s.derived("client CPU: memo_redis miss - baseline",
              c["whole @cached miss call"] - c["raw GET + SET EX (the baseline)"])
    return s
