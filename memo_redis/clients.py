"""Building redis-py clients (sync and async) for a standalone server, Redis Cluster or Sentinel."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from .config import RedisArgs

DEFAULT_SOCKET_TIMEOUT = 1.0
"""Seconds per command and per connect when the configuration sets none: a cache must answer
fast or not at all."""

_NODE_ONLY = ("host", "port", "unix_socket_path", "db")


def connection_kwargs(args: RedisArgs) -> dict[str, Any]:
    """``args.to_redis_kwargs()`` with memo_redis's default timeouts filled in."""
    kwargs = args.to_redis_kwargs()
    kwargs.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    kwargs.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
    return kwargs


def _seed_nodes(args: RedisArgs, kwargs: dict[str, Any]) -> list[tuple[str, int]]:
    if args.cluster_nodes:
        return list(args.cluster_nodes)
    return [(kwargs.get("host") or "127.0.0.1", int(kwargs.get("port") or 6379))]


def _without(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in names}


def build_client(args: RedisArgs) -> Any:
    """A sync client for ``args.mode``; at most one immediate retry (reconnects after a restart)."""
    kwargs = connection_kwargs(args)
    retry = redis.retry.Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    if args.mode == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        node: Any = ClusterNode
        nodes = [node(host, port) for host, port in _seed_nodes(args, kwargs)]
        return RedisCluster(startup_nodes=nodes, retry=retry, **_without(kwargs, _NODE_ONLY))
    if args.mode == "sentinel":
        from redis.sentinel import Sentinel

        sentinel: Any = Sentinel(  # type: ignore[no-untyped-call]
            list(args.sentinels),
            sentinel_kwargs={"socket_timeout": kwargs["socket_timeout"],
                             "socket_connect_timeout": kwargs["socket_connect_timeout"]},
            **_without(kwargs, ("host", "port", "unix_socket_path")),
        )
        return sentinel.master_for(args.sentinel_service or "", redis_class=redis.Redis,
                                   retry=retry)
    return redis.Redis(**kwargs, retry=retry)


def build_async_client(args: RedisArgs, kwargs: dict[str, Any] | None = None) -> Any:
    """The ``redis.asyncio`` equivalent of :func:`build_client` (bound to the running loop)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    retry = AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    if kwargs is not None:
        return redis.asyncio.Redis(**kwargs, retry=retry)
    kwargs = connection_kwargs(args)
    if args.mode == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in _seed_nodes(args, kwargs)]
        return RedisCluster(startup_nodes=nodes, retry=retry, **_without(kwargs, _NODE_ONLY))
    if args.mode == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        sentinel: Any = Sentinel(  # type: ignore[no-untyped-call]
            list(args.sentinels),
            sentinel_kwargs={"socket_timeout": kwargs["socket_timeout"],
                             "socket_connect_timeout": kwargs["socket_connect_timeout"]},
            **_without(kwargs, ("host", "port", "unix_socket_path")),
        )
        return sentinel.master_for(args.sentinel_service or "", redis_class=redis.asyncio.Redis,
                                   retry=retry)
    return redis.asyncio.Redis(**kwargs, retry=retry)
