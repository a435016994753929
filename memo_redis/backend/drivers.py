"""The two drivers: run the protocol's flows on redis-py's sync client or on the running event
loop's asyncio client. The hit path of a read-through (:meth:`SyncDriver.read`) lives here.

Both drivers apply the same rules in :meth:`~SyncDriver.execute`: the circuit breaker, the
deferred invalidations and the translation of redis-py's errors (:mod:`.gate`). Only the I/O
differs: a call, or an awaited call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any, Protocol, TypeVar

from redis.exceptions import NoScriptError

from ..exceptions import CacheUnavailable
from ..protocol import readthrough
from ..protocol.entries import MISS, Lookup
from ..protocol.invalidation import Invalidator
from ..protocol.readthrough import EngineSettings, LocalBytes, ReadPolicy
from ..protocol.steps import (
    Batch,
    Body,
    Call,
    Command,
    Flow,
    Join,
    Lead,
    LuaScript,
    RunScript,
    ScanPage,
    Sleep,
    Step,
)
from ..tracing import span
from ..transaction_state import bypasses
from . import fastpath, waits
from .gate import CLIENT_ERRORS, UNBROKEN_OPS, UNGATED_OPS, Gate

T = TypeVar("T")
_REDIS_STEPS = frozenset({Command, RunScript, Batch, ScanPage, Call})
_SAMPLE = 7
"""One lookup in ``_SAMPLE + 1`` is timed for the latency histogram (counts stay exact)."""


class Host(EngineSettings, Protocol):
    """What a driver needs from the engine it serves."""

    gate: Gate
    invalidator: Invalidator

    @property
    def owns_client(self) -> bool: ...

    @property
    def client(self) -> Any: ...
    @property
    def async_client(self) -> Any: ...


def _as_bytes(key: Any) -> bytes:
    # A client with decode_responses returns str; keys may not be UTF-8.
    return key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key


def _cluster_cursor(client: Any, cursor: Any) -> tuple[list[Any], int]:
    """The primaries still to scan and the cursor on the first of them."""
    if cursor is None:
        return list(client.get_primaries()), 0
    nodes, position = cursor
    return nodes, position


def _next_cluster_cursor(nodes: list[Any], cursors: dict[str, int]) -> Any:
    position = int(cursors[nodes[0].name])
    if position == 0:
        nodes = nodes[1:]
    return (nodes, position) if nodes else None


def _script_args(step: RunScript) -> tuple[Any, ...]:
    return ("EVALSHA", step.script.sha, len(step.keys), *step.keys, *step.args)


class SyncDriver:
    """Runs flows with blocking I/O on the engine's sync client."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.gate = host.gate
        self.loaded: set[str] = set()
        self._tick = 0
        """SHAs of the scripts this driver loaded in a pipeline."""
        self._client: Any = None
        self._pool: Any = None

    def _direct(self, client: Any) -> Any:
        """The pool lookups of ``client`` are written to directly (None: execute_command)."""
        pool = fastpath.direct_pool(client) if self.host.owns_client else None
        self._client, self._pool = client, pool
        return pool

    # -- flows ---------------------------------------------------------------------------------

    def run(self, flow: Flow[T]) -> T:
        """Run ``flow`` to its end: perform each step it yields, send back the reply (or throw
        the step's error into it)."""
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            reply = error = None
            try:
                reply = self.handle(step)
            except BaseException as exc:  # thrown into the flow, which may handle it
                error = exc

    def handle(self, step: Step) -> Any:
        """Perform one step of a flow."""
        kind = type(step)
        if kind in _REDIS_STEPS:
            return self.execute(step)  # type: ignore[arg-type]
        if kind is Body:
            assert isinstance(step, Body)
            return step.fn(*step.args, **step.kwargs)
        if kind is Sleep:
            assert isinstance(step, Sleep)
            time.sleep(step.seconds)
            return None
        if kind is Lead:
            assert isinstance(step, Lead)
            sub = step.flow
            return step.flights.sync.lead(step.flight_id, lambda: self.run(sub))
        if kind is Join:
            assert isinstance(step, Join)
            sub = step.flow
            return step.flights.sync.run(step.flight_id, step.wait, lambda: self.run(sub))
        return self.execute(step)  # type: ignore[arg-type]

    # -- Redis steps ---------------------------------------------------------------------------

    def execute(self, step: Command | RunScript | Batch | ScanPage | Call) -> Any:
        """Perform a Redis step through the gate: breaker, deferred invalidations, errors."""
        op = step.op
        gate = self.gate
        if op not in UNBROKEN_OPS and not gate.breaker.allow():
            raise gate.circuit_open(op)
        if gate.deferred.items and op not in UNGATED_OPS:
            self.run(gate.apply_flow(op, self.host.invalidator))
        try:
            reply = self.perform(step)
        except CLIENT_ERRORS as exc:
            raise gate.unavailable(op, exc, cluster=self.host.topology.spans_nodes
                                   ) from exc
        gate.succeeded()
        return reply

    def perform(self, step: Command | RunScript | Batch | ScanPage | Call) -> Any:
        """Perform a Redis step on the client (no gate)."""
        client = self.host.client
        if isinstance(step, Command):
            if step.target is not None:  # merged by redis-py, which must see decodable replies
                return client.execute_command(*step.args, target_nodes=step.target)
            if step.args[0] == "MGET" and not self.host.topology.spans_nodes:
                pool = self._pool if self._client is client else self._direct(client)
                if pool is not None:
                    return fastpath.send(pool, fastpath.packed(step.args))
            return client.execute_command(*step.args, NEVER_DECODE=True)
        if isinstance(step, RunScript):
            args = _script_args(step)
            pool = None
            if not self.host.topology.spans_nodes:  # the short way, as for lookups
                pool = self._pool if self._client is client else self._direct(client)
            command = fastpath.pack(args) if pool is not None else b""

            def send() -> Any:
                if pool is not None:
                    return fastpath.send(pool, command)
                return client.execute_command(*args, NEVER_DECODE=True)

            try:
                return send()
            except NoScriptError:
                client.script_load(step.script.source)
                return send()
        if isinstance(step, Batch):
            return self._pipeline(client, step)
        if isinstance(step, ScanPage):
            return self._scan_page(client, step)
        return getattr(client, step.method)(*step.args, **step.kwargs)

    def _scan_page(self, client: Any, step: ScanPage) -> tuple[Any, list[bytes]]:
        if not self.host.topology.spans_nodes:  # a single server: one cursor
            cursor, keys = client.execute_command(
                "SCAN", step.cursor or 0, "MATCH", step.match, "COUNT", step.count,
                NEVER_DECODE=True)
            return (None if int(cursor) == 0 else cursor), list(keys)
        nodes, position = _cluster_cursor(client, step.cursor)
        if not nodes:
            return None, []
        cursors, keys = client.scan(cursor=position, match=step.match, count=step.count,
                                    target_nodes=nodes[0])
        return _next_cluster_cursor(nodes, cursors), [_as_bytes(k) for k in keys]

    def _pipeline(self, client: Any, batch: Batch) -> list[Any]:
        """One pipeline; scripts are loaded in the same round trip the first time, and the
        pipeline is sent once more with the load after a server restart (NOSCRIPT). On a
        cluster, a batch ending in WAIT goes one connection per primary (:mod:`.waits`)."""
        scripts = {s.script.sha: s.script for s in batch.steps if isinstance(s, RunScript)}
        for attempt in range(2):
            load = [s for s in scripts.values() if attempt > 0 or s.sha not in self.loaded]
            if load and self.host.topology.spans_nodes:
                for script in load:  # a cluster loads on every primary, not in a pipeline
                    client.script_load(script.source)
                    self.loaded.add(script.sha)
                load = []
            if self.host.topology.spans_nodes and waits.waits(batch):
                results = waits.on_primaries(client, batch)
            else:
                pipe = client.pipeline(transaction=False)
                _queue(pipe, batch, load)
                results = list(pipe.execute(raise_on_error=False))
            retry = _settle(results, load, self.loaded)
            if retry is None:
                return results
            self.loaded.difference_update(retry)
        raise AssertionError("unreachable")

    # -- the read-through ------------------------------------------------------------------

    def lookup(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """One lookup (an MGET); raises :class:`CacheUnavailable`."""
        host = self.host
        if host.topology.needs_registration(key):
            self.run(host.topology.register_group("lookup", key))
        return host.requests.parse_lookup(key, self.execute(host.requests.lookup(key)),
                                          fingerprint)

    def read(self, policy: ReadPolicy, key: str, fingerprint: bytes | None,
             fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``fn(*args, **kwargs)`` read through the cache at ``key``: the hit path, then
        :func:`~memo_redis.protocol.readthrough.miss`. Inside a transaction block that
        invalidated ``key``, the body runs without the cache."""
        if bypasses(key):
            return fn(*args, **kwargs)
        host = self.host
        events = policy.events
        local = policy.local_cache(host) if policy.local else None
        epoch = 0
        if local is not None:
            value = local.get(key)
            if not local.is_miss(value):
                events.l1_hit()
                if type(value) is LocalBytes:  # local_copy: a fresh object per hit
                    return host.codec.serializer.decode(value.flags, value.body)
                return value
            epoch = local.epoch()
        self._tick = tick = (self._tick + 1) & _SAMPLE
        started = 0 if tick else perf_counter_ns()
        try:
            look = self.lookup(key, fingerprint)
        except CacheUnavailable as error:
            policy.failed(host, error)
            return fn(*args, **kwargs)
        if look.value is not MISS:
            if policy.beta and policy.due_early(look):
                return self.run(readthrough.refresh_early(host, policy, key, fingerprint, look,
                                                          Body(fn, args, kwargs)))
            events.hit(-1 if tick else perf_counter_ns() - started)
            if local is not None:
                policy.keep_local(local, key, look, epoch)
            return look.value
        events.miss(-1 if tick else perf_counter_ns() - started)
        with span("memo_redis.miss", function=policy.name, key=key):
            return self.run(readthrough.miss(host, policy, key, fingerprint, look,
                                             Body(fn, args, kwargs)))

    def ping(self) -> bool:
        """Does Redis answer PING (every primary of a cluster)? Never raises; no breaker."""
        try:
            return bool(self.perform(self.host.topology.ping("health")))
        except CLIENT_ERRORS:
            return False


class AsyncDriver:
    """Runs flows on the running event loop's asyncio client (no thread, no sync client)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.gate = host.gate
        self.loaded: set[str] = set()
        self._tick = 0

    async def run(self, flow: Flow[T]) -> T:
        """Async :meth:`SyncDriver.run`."""
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            reply = error = None
            try:
                reply = await self.handle(step)
            except BaseException as exc:
                error = exc

    async def handle(self, step: Step) -> Any:
        """Async :meth:`SyncDriver.handle`."""
        kind = type(step)
        if kind in _REDIS_STEPS:
            return await self.execute(step)  # type: ignore[arg-type]
        if kind is Body:
            assert isinstance(step, Body)
            return await step.fn(*step.args, **step.kwargs)
        if kind is Sleep:
            assert isinstance(step, Sleep)
            await asyncio.sleep(step.seconds)
            return None
        if kind is Lead:
            assert isinstance(step, Lead)
            sub = step.flow
            return await step.flights.aio.lead(step.flight_id, lambda: self.run(sub))
        if kind is Join:
            assert isinstance(step, Join)
            sub = step.flow
            return await step.flights.aio.run(step.flight_id, step.wait, lambda: self.run(sub))
        return await self.execute(step)  # type: ignore[arg-type]

    async def execute(self, step: Command | RunScript | Batch | ScanPage | Call) -> Any:
        """Async :meth:`SyncDriver.execute`."""
        op = step.op
        gate = self.gate
        if op not in UNBROKEN_OPS and not gate.breaker.allow():
            raise gate.circuit_open(op)
        if gate.deferred.items and op not in UNGATED_OPS:
            await self.run(gate.apply_flow(op, self.host.invalidator))
        try:
            reply = await self.perform(step)
        except CLIENT_ERRORS as exc:
            raise gate.unavailable(op, exc, cluster=self.host.topology.spans_nodes
                                   ) from exc
        gate.succeeded()
        return reply

    async def perform(self, step: Command | RunScript | Batch | ScanPage | Call) -> Any:
        """Async :meth:`SyncDriver.perform`."""
        client = self.host.async_client
        if isinstance(step, Command):
            if step.target is not None:
                return await client.execute_command(*step.args, target_nodes=step.target)
            if step.args[0] == "MGET" and not self.host.topology.spans_nodes:
                pool = fastpath.direct_pool(client) if self.host.owns_client else None
                if pool is not None:
                    return await fastpath.asend(pool, fastpath.packed(step.args))
            return await client.execute_command(*step.args, NEVER_DECODE=True)
        if isinstance(step, RunScript):
            args = _script_args(step)
            pool = None
            if not self.host.topology.spans_nodes and self.host.owns_client:
                pool = fastpath.direct_pool(client)  # the short way, as for lookups
            command = fastpath.pack(args) if pool is not None else b""

            async def send() -> Any:
                if pool is not None:
                    return await fastpath.asend(pool, command)
                return await client.execute_command(*args, NEVER_DECODE=True)

            try:
                return await send()
            except NoScriptError:
                await client.script_load(step.script.source)
                return await send()
        if isinstance(step, Batch):
            return await self._pipeline(client, step)
        if isinstance(step, ScanPage):
            return await self._scan_page(client, step)
        method: Callable[..., Awaitable[Any]] = getattr(client, step.method)
        return await method(*step.args, **step.kwargs)

    async def _scan_page(self, client: Any, step: ScanPage) -> tuple[Any, list[bytes]]:
        if not self.host.topology.spans_nodes:
            cursor, keys = await client.execute_command(
                "SCAN", step.cursor or 0, "MATCH", step.match, "COUNT", step.count,
                NEVER_DECODE=True)
            return (None if int(cursor) == 0 else cursor), list(keys)
        nodes, position = _cluster_cursor(client, step.cursor)
        if not nodes:
            return None, []
        cursors, keys = await client.scan(cursor=position, match=step.match, count=step.count,
                                          target_nodes=nodes[0])
        return _next_cluster_cursor(nodes, cursors), [_as_bytes(k) for k in keys]

    async def _pipeline(self, client: Any, batch: Batch) -> list[Any]:
        scripts = {s.script.sha: s.script for s in batch.steps if isinstance(s, RunScript)}
        for attempt in range(2):
            load = [s for s in scripts.values() if attempt > 0 or s.sha not in self.loaded]
            if load and self.host.topology.spans_nodes:
                for script in load:
                    await client.script_load(script.source)
                    self.loaded.add(script.sha)
                load = []
            if self.host.topology.spans_nodes and waits.waits(batch):
                results = await waits.aon_primaries(client, batch)
            else:
                pipe = client.pipeline(transaction=False)
                _queue(pipe, batch, load)
                results = list(await pipe.execute(raise_on_error=False))
            retry = _settle(results, load, self.loaded)
            if retry is None:
                return results
            self.loaded.difference_update(retry)
        raise AssertionError("unreachable")

    async def lookup(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """Async :meth:`SyncDriver.lookup`."""
        host = self.host
        if host.topology.needs_registration(key):
            await self.run(host.topology.register_group("lookup", key))
        return host.requests.parse_lookup(key, await self.execute(host.requests.lookup(key)),
                                          fingerprint)

    async def read(self, policy: ReadPolicy, key: str, fingerprint: bytes | None,
                   fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        """Async :meth:`SyncDriver.read`."""
        if bypasses(key):
            return await fn(*args, **kwargs)
        host = self.host
        events = policy.events
        local = policy.local_cache(host) if policy.local else None
        epoch = 0
        if local is not None:
            value = local.get(key)
            if not local.is_miss(value):
                events.l1_hit()
                if type(value) is LocalBytes:  # local_copy: a fresh object per hit
                    return host.codec.serializer.decode(value.flags, value.body)
                return value
            epoch = local.epoch()
        self._tick = tick = (self._tick + 1) & _SAMPLE
        started = 0 if tick else perf_counter_ns()
        try:
            look = await self.lookup(key, fingerprint)
        except CacheUnavailable as error:
            policy.failed(host, error)
            return await fn(*args, **kwargs)
        if look.value is not MISS:
            if policy.beta and policy.due_early(look):
                return await self.run(readthrough.refresh_early(
                    host, policy, key, fingerprint, look, Body(fn, args, kwargs)))
            events.hit(-1 if tick else perf_counter_ns() - started)
            if local is not None:
                policy.keep_local(local, key, look, epoch)
            return look.value
        events.miss(-1 if tick else perf_counter_ns() - started)
        with span("memo_redis.miss", function=policy.name, key=key):
            return await self.run(readthrough.miss(host, policy, key, fingerprint, look,
                                                   Body(fn, args, kwargs)))

    async def ping(self) -> bool:
        """Async :meth:`SyncDriver.ping`."""
        try:
            return bool(await self.perform(self.host.topology.ping("health")))
        except CLIENT_ERRORS:
            return False


def _queue(pipe: Any, batch: Batch, load: list[LuaScript]) -> None:
    queue: Callable[..., Any] = pipe.execute_command
    for script in load:
        queue("SCRIPT", "LOAD", script.source)
    for step in batch.steps:
        if isinstance(step, RunScript):
            queue(*_script_args(step), NEVER_DECODE=True)
        else:
            queue(*step.args, NEVER_DECODE=True)


def _settle(results: list[Any], load: list[LuaScript], loaded: set[str]) -> list[str] | None:
    """Check a pipeline's replies (the loads' replies are removed from ``results``): the SHAs to
    reload and send again after a NOSCRIPT, or None when done; raises the first error reply."""
    del results[: len(load)]
    if not load and any(isinstance(r, NoScriptError) for r in results):
        return [r for r in loaded]
    for result in results:
        if isinstance(result, Exception):
            raise result
    loaded.update(s.sha for s in load)
    return None
