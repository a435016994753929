"""``WAIT`` on Redis Cluster: a batch's writes, then ``WAIT``, on one connection per primary.

``WAIT`` counts the replicas that acknowledged the writes *of the connection it runs on*. On a
single server (or Sentinel) a pipeline is one connection, so a batch ending in ``WAIT`` needs
nothing more. redis-py's cluster pipeline, though, sends a keyless ``WAIT`` to every node (and
sums the replies), and resends a failed one anywhere: each would count writes it never carried.
Here the writes are grouped by the primary owning their key, and each group is sent with its own
``WAIT`` on one connection of that primary, without redirections; the reply kept for ``WAIT`` is
the fewest replicas any primary acknowledged. A failed node or a reply error (a slot moved by a
failover) refreshes the client's slot map, so the next try goes to the new primary.
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from ..protocol.steps import Batch, Command, RunScript

CLIENT_KWARGS = {"NEVER_DECODE": True}
_REFRESH_ERRORS = (RedisError, OSError, RedisClusterException)  # the refresh is tried again


def waits(batch: Batch) -> bool:
    """Does ``batch`` end in ``WAIT`` (the writes before it must be acknowledged)?"""
    last = batch.steps[-1]
    return isinstance(last, Command) and last.args[0] == "WAIT"


def command_args(step: Command | RunScript) -> tuple[Any, ...]:
    """The command a step sends (``EVALSHA`` for a script)."""
    if isinstance(step, RunScript):
        return ("EVALSHA", step.script.sha, len(step.keys), *step.keys, *step.args)
    return step.args


def per_primary(client: Any, batch: Batch) -> list[tuple[Any, list[int]]]:
    """The primaries the steps before ``batch``'s ``WAIT`` go to (by their first key), each
    with the positions of its steps."""
    nodes: dict[str, tuple[Any, list[int]]] = {}
    for index, step in enumerate(batch.steps[:-1]):
        key = step.keys[0] if isinstance(step, RunScript) else step.args[1]
        node = client.get_node_from_key(key)
        nodes.setdefault(node.name, (node, []))[1].append(index)
    return list(nodes.values())


def place(replies: list[Any], indexes: list[int], results: list[Any]) -> bool:
    """Put one primary's replies (its steps', then its ``WAIT``'s, kept when it is the fewest
    so far or an error) into ``replies``; True when one of them is an error."""
    *own, acked = results
    for index, result in zip(indexes, own, strict=True):
        replies[index] = result
    last = replies[-1]
    if not isinstance(last, Exception) and (
            last is None or isinstance(acked, Exception) or int(acked) < int(last)):
        replies[-1] = acked
    return any(isinstance(result, Exception) for result in results)


def on_primaries(client: Any, batch: Batch) -> list[Any]:
    """Send ``batch`` (ending in ``WAIT``) on a sync ``RedisCluster``; its replies, errors
    included (as a pipeline's with ``raise_on_error=False``)."""
    replies: list[Any] = [None] * len(batch.steps)
    for node, indexes in per_primary(client, batch):
        pipe = client.get_redis_connection(node).pipeline(transaction=False)
        for index in (*indexes, len(batch.steps) - 1):
            pipe.execute_command(*command_args(batch.steps[index]), **CLIENT_KWARGS)
        stale = True
        try:
            stale = place(replies, indexes, list(pipe.execute(raise_on_error=False)))
        finally:
            if stale:  # a dead node, or a slot map older than a failover
                with contextlib.suppress(*_REFRESH_ERRORS):
                    client.nodes_manager.initialize(last_failed_node_name=node.name)
    return replies


async def aon_primaries(client: Any, batch: Batch) -> list[Any]:
    """Async :func:`on_primaries` (a ``redis.asyncio`` ``RedisCluster``)."""
    from redis.asyncio.cluster import PipelineCommand

    await client.initialize()
    replies: list[Any] = [None] * len(batch.steps)
    for node, indexes in per_primary(client, batch):
        commands = [PipelineCommand(n, *command_args(batch.steps[index]), **CLIENT_KWARGS)
                    for n, index in enumerate((*indexes, len(batch.steps) - 1))]
        stale = True
        try:
            await node.execute_pipeline(commands)
            stale = place(replies, indexes, [command.result for command in commands])
        finally:
            if stale:
                with contextlib.suppress(*_REFRESH_ERRORS):
                    await client.nodes_manager.initialize(last_failed_node_name=node.name)
    return replies
