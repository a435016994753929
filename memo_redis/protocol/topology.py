"""Single server or Redis Cluster, as a strategy: key names, routing and keyspace-wide steps.

:class:`SingleServer` (also Sentinel) and :class:`Cluster` differ in how an entry's keys are named
(:mod:`memo_redis.layout`: hash tags on a cluster), how a scan finds them, how keys of many slots
are unlinked, and in the registry of groups a cluster needs to invalidate wide prefixes. The
flows and the engine ask the topology; none of them tests "is this a cluster".
"""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from .. import layout
from ..keys import is_glob, matches
from .requests import Requests
from .steps import Batch, Call, Command, Flow


class SingleServer:
    """One Redis server (or the primary a Sentinel names)."""

    name = "single"
    supports_local_cache = True
    spans_nodes = False
    """Do the keys live on several primaries (scans walk each; scripts are loaded on each)?"""

    def __init__(self) -> None:
        self.layout: layout.KeyLayout = layout.KeyLayout()

    def needs_registration(self, key: str) -> bool:
        """Must :meth:`register_group` run before ``key``'s first use in this process?"""
        return False

    def register_group(self, op: str, key: str) -> Flow[None]:
        """Record ``key``'s group in the registry before its first use (cluster only)."""
        return
        yield  # a generator

    def groups_to_bump(self, op: str, prefix: str) -> Flow[list[str]]:
        """The registered groups that invalidating ``prefix:*`` must reach (cluster only)."""
        return []
        yield  # a generator

    def scan_match(self, pattern: str) -> str:
        """The SCAN MATCH finding ``pattern``'s keys."""
        return pattern

    def scanned_matches(self, pattern: str, key: bytes) -> bool:
        """Does a key SCAN found for ``pattern`` really match it (beyond SCAN's own filter)?"""
        return True

    def fence_match(self, pattern: str) -> str:
        """The SCAN MATCH finding the fences of ``pattern``'s entries."""
        return layout.FENCE_PREFIX + pattern

    def fenced_key(self, fence: bytes) -> bytes | None:
        """The logical key a fence found by SCAN guards (None: not a fence of an entry)."""
        return fence[len(layout.FENCE_PREFIX):]

    def remove(self, op: str, keys: list[bytes], command: str = "UNLINK") -> Flow[int]:
        """UNLINK (or DEL) ``keys``; returns how many existed."""
        return int((yield Command(op, (command, *keys))))

    def read_entries(self, op: str, requests: Requests, keys: list[str]
                     ) -> Flow[list[list[bytes | None]]]:
        """What a lookup of each of ``keys`` reads (generations, then the value), in one round
        trip: one MGET of every distinct key."""
        lay = self.layout
        gen_keys = list(dict.fromkeys(g for key in keys for g in lay.generation_keys(key)))
        raws = yield Command(op, ("MGET", *gen_keys, *(lay.physical(key) for key in keys)))
        gen_values = dict(zip(gen_keys, raws[: len(gen_keys)], strict=True))
        return [[*(gen_values[g] for g in lay.generation_keys(key)), raw]
                for key, raw in zip(keys, raws[len(gen_keys):], strict=True)]

    def dbsize(self, op: str) -> Command:
        """Keys in the keyspace."""
        return Command(op, ("DBSIZE",))

    def ping(self, op: str) -> Call:
        """PING the server (every primary on a cluster)."""
        return Call(op, "ping")

    def info_stats(self, op: str) -> Call:
        """``INFO stats`` (of every primary on a cluster)."""
        return Call(op, "info", ("stats",))

    @staticmethod
    def stats_of(reply: Any) -> list[dict[str, Any]]:
        """The ``INFO stats`` sections of :meth:`info_stats`'s reply, one per server."""
        return [reply]


class Cluster(SingleServer):
    """Redis Cluster: hash-tagged keys (:class:`layout.ClusterLayout`) and a registry of groups."""

    name = "cluster"
    supports_local_cache = False  # one tracking connection cannot see every node
    spans_nodes = True

    def __init__(self) -> None:
        self.layout = layout.ClusterLayout()
        self.groups: set[str] = set()
        """The groups this process registered (it puts them back if the registry lost them)."""

    def needs_registration(self, key: str) -> bool:
        return self.layout.group(key) not in self.groups

    def register_group(self, op: str, key: str) -> Flow[None]:
        group = self.layout.group(key)
        if group is not None and group not in self.groups:
            yield Command(op, ("SADD", layout.GROUPS_KEY, group))
            self.groups.add(group)

    def groups_to_bump(self, op: str, prefix: str) -> Flow[list[str]]:
        if not self.layout.needs_registry(prefix):
            return []
        members = yield Command(op, ("SMEMBERS", layout.GROUPS_KEY))
        registered = {m.decode() if isinstance(m, bytes) else m for m in members}
        # The registry can lose groups (a failover before it replicated, a FLUSHALL); this
        # process would never register its own again, so it puts them back here.
        missing = self.groups - registered
        if missing:
            yield Command(op, ("SADD", layout.GROUPS_KEY, *sorted(missing)))
        return sorted(registered | missing)

    def scan_match(self, pattern: str) -> str:
        colons = [i for i, ch in enumerate(pattern) if ch == ":" and pattern[i - 1] != "\\"]
        literal = pattern[: colons[1]] if len(colons) >= 2 else pattern
        if len(colons) >= 1 and not is_glob(literal):
            return "{" + literal + "}" + pattern[len(literal):]
        return "*"

    def scanned_matches(self, pattern: str, key: bytes) -> bool:
        return matches(pattern, self.layout.logical(key))

    def fence_match(self, pattern: str) -> str:
        # Fences are __memo__:fence:{group}|<key>; the exact test is on the logical key.
        return layout.FENCE_PREFIX + "*|" + pattern

    def fenced_key(self, fence: bytes) -> bytes | None:
        name = fence[len(layout.FENCE_PREFIX):]
        if not name.startswith(b"{"):
            return None
        return name[name.find(b"}|") + 2:]

    def remove(self, op: str, keys: list[bytes], command: str = "UNLINK") -> Flow[int]:
        # One UNLINK per slot, pipelined: one round trip per primary, where redis-py's unlink()
        # makes one per slot.
        by_slot: dict[int, list[bytes]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key), []).append(key)
        replies = yield Batch(op, tuple(Command(op, (command, *same))
                                        for same in by_slot.values()))
        return sum(int(n) for n in replies)

    def read_entries(self, op: str, requests: Requests, keys: list[str]
                     ) -> Flow[list[list[bytes | None]]]:
        # One MGET per entry (its keys share a slot), pipelined.
        replies = yield Batch(op, tuple(requests.lookup(key, op) for key in keys))
        return list(replies)

    def dbsize(self, op: str) -> Command:
        return Command(op, ("DBSIZE",), target="primaries")

    def ping(self, op: str) -> Call:
        return Call(op, "ping", (), {"target_nodes": "primaries"})

    def info_stats(self, op: str) -> Call:
        return Call(op, "info", ("stats",), {"target_nodes": "primaries"})

    @staticmethod
    def stats_of(reply: Any) -> list[dict[str, Any]]:
        infos = list(reply.values()) if isinstance(reply, dict) else [reply]
        if infos and not isinstance(infos[0], dict):  # a single node's flat answer
            return [reply]
        return infos
