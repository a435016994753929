"""In-process single-flight: concurrent callers of one key share one computation.

The flight id includes the generations and the fence the caller's claim observed (a fence token
present after an invalidation was created after it), so a caller whose claim happened after an
invalidation never joins a computation that started before it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_future
from typing import Any, Final

_INTERRUPTED: Final = object()
"""What a thread leader interrupted by a non-Exception BaseException hands its followers."""


class Flights:
    """Thread single-flight: the first caller of an id runs ``compute``; the others wait for it.

    A follower waits at most ``wait`` seconds, then runs ``compute`` itself. Followers receive the
    leader's result or its exception; when the leader is interrupted by a ``BaseException`` that
    is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``), they compute themselves.
    """

    __slots__ = ("_lock", "_running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Any]] = {}

    def run(self, flight_id: Hashable, wait: float, compute: Callable[[], Any]) -> Any:
        """Run ``compute`` once for concurrent callers with the same ``flight_id``."""
        with self._lock:
            future = self._running.get(flight_id)
            leader = future is None
            if leader:
                future = self._running[flight_id] = Future()
        assert future is not None
        if not leader:
            done, _ = wait_for_future([future], timeout=wait)
            if not done:
                return compute()
            result = future.result()
            return compute() if result is _INTERRUPTED else result
        return self._lead(flight_id, future, compute)

    def lead(self, flight_id: Hashable, compute: Callable[[], Any]) -> Any:
        """Run ``compute`` now (its caller already holds the cross-process lock), letting later
        callers of ``flight_id`` join it; when a flight of that id is already running (a caller
        waiting for the lock), compute without joining it."""
        with self._lock:
            future = None
            if flight_id not in self._running:
                future = self._running[flight_id] = Future()
        if future is None:
            return compute()
        return self._lead(flight_id, future, compute)

    def _lead(self, flight_id: Hashable, future: Future[Any], compute: Callable[[], Any]) -> Any:
        try:
            result = compute()
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:
            # The interruption belongs to the leader's thread only. (Future.cancel() would not
            # wake concurrent.futures.wait() without an executor, hence a marker result.)
            future.set_result(_INTERRUPTED)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                if self._running.get(flight_id) is future:
                    del self._running[flight_id]


class AsyncFlights:
    """Task single-flight, one table per event loop.

    Followers receive the leader's result or exception; when the leader task is cancelled they
    compute themselves (the cancellation belongs to the leader only).
    """

    __slots__ = ("_loops",)

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()

    async def run(self, flight_id: Hashable, wait: float,
                  compute: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``compute`` once for concurrent tasks with the same ``flight_id``."""
        loop = asyncio.get_running_loop()
        running = self._loops.get(loop)
        if running is None:
            running = self._loops[loop] = {}
        future = running.get(flight_id)
        if future is not None:
            # asyncio.wait neither cancels the shared future on timeout nor on our cancellation.
            done, _ = await asyncio.wait({future}, timeout=wait)
            if not done or future.cancelled():
                return await compute()
            return future.result()
        future = running[flight_id] = loop.create_future()
        return await self._lead(running, flight_id, future, compute)

    async def lead(self, flight_id: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """Async :meth:`Flights.lead`."""
        running = self._loops.get(asyncio.get_running_loop())
        if running is not None and flight_id in running:
            return await compute()
        # No await before run() registers this task: it becomes the flight's leader.
        return await self.run(flight_id, 0.0, compute)

    @staticmethod
    async def _lead(running: dict[Hashable, asyncio.Future[Any]], flight_id: Hashable,
                    future: asyncio.Future[Any], compute: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await compute()
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: followers may be gone
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if running.get(flight_id) is future:
                del running[flight_id]


class FlightTables:
    """One function's single-flight tables: threads (:class:`Flights`) and asyncio tasks
    (:class:`AsyncFlights`)."""

    __slots__ = ("aio", "sync")

    def __init__(self) -> None:
        self.sync = Flights()
        self.aio = AsyncFlights()
