"""Building redis-py clients (sync and async) for a standalone server, Redis Cluster or Sentinel."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.sentinel import SentinelConnectionPool

from ..config import REDIS_DEFAULT_PORT, RedisArgs

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
    return [(kwargs.get("host") or "127.0.0.1", int(kwargs.get("port") or REDIS_DEFAULT_PORT))]


def _without(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in names}


def _tls_only(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``ssl`` and the ``ssl_*`` settings of ``kwargs`` (empty without TLS)."""
    if not kwargs.get("ssl"):
        return {}
    return {k: v for k, v in kwargs.items() if k == "ssl" or k.startswith("ssl_")}


def _sentinel_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the connections to the sentinels: the timeouts and TLS of the primary's
    (a TLS deployment serves TLS on its sentinels too); never the primary's credentials."""
    return {"socket_timeout": kwargs["socket_timeout"],
            "socket_connect_timeout": kwargs["socket_connect_timeout"], **_tls_only(kwargs)}


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

        # Any: older redis-py releases leave Sentinel's constructor unannotated.
        sentinel_type: Any = Sentinel
        sentinel: Any = sentinel_type(
            list(args.sentinels),
            sentinel_kwargs=_sentinel_kwargs(kwargs),
            **_without(kwargs, ("host", "port", "unix_socket_path")),
        )
        return sentinel.master_for(args.sentinel_service or "", redis_class=redis.Redis,
                                   retry=retry)
    return redis.Redis(**kwargs, retry=retry)


def _async_retry() -> Any:
    from redis.asyncio.retry import Retry as AsyncRetry

    return AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def build_async_client(args: RedisArgs) -> Any:
    """The ``redis.asyncio`` equivalent of :func:`build_client` (bound to the running loop)."""
    retry = _async_retry()
    kwargs = connection_kwargs(args)
    if args.mode == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in _seed_nodes(args, kwargs)]
        return RedisCluster(startup_nodes=nodes, retry=retry, **_without(kwargs, _NODE_ONLY))
    if args.mode == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        # Any: older redis-py releases leave Sentinel's constructor unannotated.
        sentinel_type: Any = Sentinel
        sentinel: Any = sentinel_type(
            list(args.sentinels),
            sentinel_kwargs=_sentinel_kwargs(kwargs),
            **_without(kwargs, ("host", "port", "unix_socket_path")),
        )
        return sentinel.master_for(args.sentinel_service or "", redis_class=redis.asyncio.Redis,
                                   retry=retry)
    return redis.asyncio.Redis(**kwargs, retry=retry)


# Connection settings that mean the same to redis.asyncio and hold plain values (a sync client's
# callbacks, dispatchers and pools do not carry over).
_PORTABLE = frozenset({
    "db", "username", "password", "credential_provider", "socket_timeout",
    "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options", "retry_on_timeout",
    "encoding", "encoding_errors", "decode_responses", "health_check_interval", "client_name",
    "lib_name", "lib_version", "protocol",
})


def _portable(kwargs: Mapping[str, Any], target: Any, ssl: bool = False) -> dict[str, Any]:
    """The settings of a sync connection pool that the async ``target`` class accepts."""
    accepted = set(inspect.signature(target.__init__).parameters)
    kept = {k: v for k, v in kwargs.items()
            if k in accepted and (k in _PORTABLE or (ssl and k.startswith("ssl_")))}
    if ssl:
        kept["ssl"] = True
    return kept


def _is_ssl_class(connection_class: Any) -> bool:
    return isinstance(connection_class, type) and issubclass(connection_class, SSLConnection)


def _is_ssl(pool: Any) -> bool:
    return _is_ssl_class(getattr(pool, "connection_class", None))


def build_async_twin(client: Any) -> Any:
    """An async client reaching the same deployment as the sync ``client`` passed to
    ``RedisCaching(client=...)``: a ``redis.asyncio`` RedisCluster seeded with the cluster's
    nodes, a Sentinel-managed ``redis.asyncio.Redis`` for the same service, or a plain one."""
    retry = _async_retry()
    if isinstance(client, RedisCluster):
        from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        cluster: Any = client  # redis-py leaves RedisCluster's methods untyped
        kwargs = cluster.get_connection_kwargs()
        nodes = [AsyncClusterNode(node.host, node.port) for node in cluster.get_nodes()]
        ssl = _is_ssl_class(kwargs.get("connection_class")) or bool(kwargs.get("ssl"))
        return AsyncRedisCluster(startup_nodes=nodes, retry=retry,
                                 **_portable(kwargs, AsyncRedisCluster, ssl))
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        manager: Any = pool.sentinel_manager
        sentinels = [(node.connection_pool.connection_kwargs["host"],
                      node.connection_pool.connection_kwargs["port"])
                     for node in manager.sentinels]
        async_sentinel_type: Any = AsyncSentinel
        given_kwargs = manager.sentinel_kwargs or {}
        async_sentinel: Any = async_sentinel_type(
            sentinels,
            sentinel_kwargs=_portable(given_kwargs, redis.asyncio.Redis,
                                      bool(given_kwargs.get("ssl"))),
        )
        return async_sentinel.master_for(
            pool.service_name, redis_class=redis.asyncio.Redis, retry=retry,
            **_portable(pool.connection_kwargs, redis.asyncio.Redis, _is_ssl(pool)),
        )
    kwargs = dict(pool.connection_kwargs)
    address: dict[str, Any] = (
        {"unix_socket_path": kwargs["path"]} if kwargs.get("path")
        else {"host": kwargs.get("host", "localhost"),
              "port": kwargs.get("port", REDIS_DEFAULT_PORT)}
    )
    return redis.asyncio.Redis(**address, retry=retry,
                               **_portable(kwargs, redis.asyncio.Redis, _is_ssl(pool)))


def describe_client(client: Any) -> tuple[str, str | None]:
    """Where a client passed in connects (safe to log) and its password (to redact)."""
    if isinstance(client, RedisCluster):
        cluster: Any = client
        kwargs: Mapping[str, Any] = cluster.get_connection_kwargs()
        nodes = ",".join(f"{node.host}:{node.port}" for node in cluster.get_nodes())
        tls = _is_ssl_class(kwargs.get("connection_class")) or bool(kwargs.get("ssl"))
        target = f"cluster {nodes}{' tls' if tls else ''}"
    else:
        pool = getattr(client, "connection_pool", None)
        kwargs = dict(getattr(pool, "connection_kwargs", None) or {})
        db = kwargs.get("db", 0)
        if isinstance(pool, SentinelConnectionPool):
            manager: Any = pool.sentinel_manager
            via = ",".join(
                "{host}:{port}".format(**node.connection_pool.connection_kwargs)
                for node in manager.sentinels)
            target = f"sentinel {pool.service_name} via {via} db={db}"
            target += " tls" if _is_ssl(pool) else ""
        elif kwargs.get("path"):
            target = f"unix://{kwargs['path']} db={db}"
        else:
            scheme = "rediss" if _is_ssl(pool) else "redis"
            where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', REDIS_DEFAULT_PORT)}"
            target = f"{scheme}://{where}/{db}"
    password = kwargs.get("password")
    return f"client {target}", password if isinstance(password, str) else None
