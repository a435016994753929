"""Bytes stored per entry: ``MEMORY USAGE`` of the key each contender writes for one call.

Each contender runs alone on an emptied server; its entry is the largest key it wrote that is not
bookkeeping (memo_redis's ``__memo__:*`` generation keys and index are shared by every entry of a
table and reported separately). The plain JSON figure is ``json.dumps(rows)`` stored under
memo_redis's key name, so key length does not tilt the comparison.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis

from .contenders import AsyncContender, Body, Builder, Target
from .workload import Rows


def _entry(client: redis.Redis) -> tuple[str, int, int]:
    best = ("", 0, 0)
    for raw_key in client.scan_iter(count=1000):
        key = raw_key.decode()
        if key.startswith("__memo__:"):
            continue
        usage = int(client.memory_usage(key, samples=0) or 0)
        if usage > best[1]:
            best = (key, usage, int(client.strlen(key)))
    return best


def measure(builders: tuple[Builder, ...], target: Target, client: redis.Redis, rows: Rows,
            label: str, loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """One record per contender (plus plain JSON) for ``rows``."""
    records: list[dict[str, Any]] = []
    memo_key = ""
    for builder in builders:
        client.flushall()
        contender = builder(target, Body(rows))
        if isinstance(contender, AsyncContender):
            loop.run_until_complete(contender.warm())
            loop.run_until_complete(contender.close())
        else:
            contender.warm()
            contender.close()
        key, usage, length = _entry(client)
        if contender.family == "memo_redis":
            memo_key = key
        records.append({"rows": label, "contender": contender.name, "key": key,
                        "memory_usage": usage, "value_bytes": length})
    client.flushall()
    key = memo_key or "json:users"
    client.set(key, json.dumps(rows).encode())
    records.append({"rows": label, "contender": "plain JSON string", "key": key,
                    "memory_usage": int(client.memory_usage(key, samples=0) or 0),
                    "value_bytes": int(client.strlen(key))})
    client.flushall()
    return records
