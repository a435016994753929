"""Invalidation flows: by pattern (four strategies) and of one entry.

Keys not matching the pattern are left alone and KEYS is never used. See
:meth:`memo_redis.RedisCaching.invalidate` for the strategies and their costs.
"""

from __future__ import annotations

from .. import envelope, layout
from ..keys import glob_escape, literal_prefix, matches
from . import steps
from .requests import Requests
from .steps import Batch, Command, Flow, RunScript, ScanPage
from .topology import SingleServer


class Invalidator:
    """The invalidation flows of one cache."""

    def __init__(self, topology: SingleServer, requests: Requests, *, scan_threshold: int,
                 scan_count: int) -> None:
        self.topology = topology
        self.layout = topology.layout
        self.requests = requests
        self.scan_threshold = scan_threshold
        self.scan_count = scan_count

    def one(self, key: str, op: str) -> Flow[int]:
        """Delete one entry and its fence; 1 when a live entry was deleted."""
        return int((yield self.requests.invalidate_one(key, op)))

    def pattern(self, pattern: str, op: str) -> Flow[int]:
        """Invalidate every entry matching the glob ``pattern``; returns the number deleted."""
        prefix = literal_prefix(pattern)
        whole = pattern == (glob_escape(prefix) + ":*" if prefix else "*")
        if whole:
            yield from self.bump(prefix, op)
            return (yield from self.unlink_prefix(pattern, prefix, op))
        yield from self.unfence_matching(pattern, op)
        return (yield from self.unlink_scanned(pattern, op))

    def bump(self, prefix: str, op: str) -> Flow[None]:
        """Replace the generation(s) invalidating ``prefix:*`` takes effect through.

        Entries stamped with the old token are misses at once, and computations that observed
        it are refused (an evicted token is recreated fresh by the next claim: never the old one).
        On Redis Cluster, ``sql:*`` and ``*`` replace one copy per group (table) under the prefix,
        as listed in the groups registry: O(groups), one pipelined round trip per primary.
        """
        groups = yield from self.topology.groups_to_bump(op, prefix)
        keys = self.layout.bump_keys(prefix, groups)
        if len(keys) == 1:
            yield RunScript(op, steps.BUMP, keys, [envelope.new_token()])
        elif keys:
            yield Batch(op, tuple(RunScript(op, steps.BUMP, [key], [envelope.new_token()])
                                  for key in keys))

    def unlink_prefix(self, pattern: str, prefix: str, op: str) -> Flow[int]:
        """Unlink the entries under ``prefix`` after its generation was replaced: from the
        prefix's index set when the keyspace is large, or always for a prefix deeper than a
        table (``sql:users:7``: one row of a table), whose entries are a small part of their
        table's index; else by SCAN, which also finds keys other clients wrote."""
        index = self.layout.index_key_for_prefix(prefix)
        if index:
            deep = prefix.count(":") >= 2
            if (deep or int((yield self.topology.dbsize(op))) > self.scan_threshold) and (
                    yield Command(op, ("EXISTS", index))):
                return (yield from self.unlink_indexed(index, pattern, prefix, op))
        return (yield from self.unlink_scanned(pattern, op))

    def unlink_scanned(self, pattern: str, op: str) -> Flow[int]:
        """SCAN + UNLINK of the keys matching ``pattern`` (never memo_redis's own), in batches
        of ``scan_count``."""
        topology = self.topology
        deleted = 0
        batch: list[bytes] = []
        cursor = None
        while True:
            cursor, keys = yield ScanPage(op, topology.scan_match(pattern), self.scan_count,
                                          cursor)
            for key in keys:
                if layout.is_internal(key) or not topology.scanned_matches(pattern, key):
                    continue
                batch.append(key)
                if len(batch) >= self.scan_count:
                    deleted += yield from topology.remove(op, batch)
                    batch = []
            if cursor is None:
                break
        if batch:
            deleted += yield from topology.remove(op, batch)
        return deleted

    def unlink_indexed(self, index: str, pattern: str, prefix: str, op: str) -> Flow[int]:
        """Unlink the entries recorded in ``index`` that match ``pattern``: O(matches)."""
        # The index of a 2-segment prefix holds only keys under it; deeper prefixes share the
        # index of their first two segments and need the pattern test.
        if prefix.count(":") == 1:
            return int((yield RunScript(op, steps.DRAIN_INDEX, [index], [])))
        deleted = 0
        cursor = 0
        # On a single server the members are the logical keys: SSCAN filters them itself.
        match = () if self.layout.tagged else ("MATCH", pattern)
        while True:
            cursor, members = yield Command(op, ("SSCAN", index, cursor, *match, "COUNT",
                                                 self.scan_count))
            cursor = int(cursor)
            chosen = [m for m in members if matches(pattern, self.layout.logical(m))]
            if chosen:
                # A raw UNLINK: redis-py's cluster pipeline refuses unlink() of several keys,
                # though an index and its members always share one slot.
                replies = yield Batch(op, (Command(op, ("UNLINK", *chosen)),
                                           Command(op, ("SREM", index, *chosen))))
                deleted += int(replies[0])
            if cursor == 0:
                return deleted

    def unfence_matching(self, pattern: str, op: str) -> Flow[int]:
        """Delete the fence of every entry matching ``pattern``: each computation in flight armed
        one before its body ran, so none of them can store afterwards."""
        topology = self.topology
        fences: list[bytes] = []
        deleted = 0
        cursor = None
        while True:
            cursor, keys = yield ScanPage(op, topology.fence_match(pattern), self.scan_count,
                                          cursor)
            for fence in keys:
                name = topology.fenced_key(fence)
                if name is not None and matches(pattern, name):
                    fences.append(fence)
                    if len(fences) >= self.scan_count:
                        deleted += yield from topology.remove(op, fences)
                        fences = []
            if cursor is None:
                break
        if fences:
            deleted += yield from topology.remove(op, fences)
        return deleted
