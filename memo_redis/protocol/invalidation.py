"""Invalidation flows: by pattern (four strategies) and of one entry.

Keys not matching the pattern are left alone and KEYS is never used. See
:meth:`memo_redis.RedisCaching.invalidate` for the strategies and their costs.

With ``replicas`` > 0 (``RedisCaching(wait_replicas=...)``) each flow ends with ``WAIT`` on the
connection that carried its decisive writes, pipelined with them: the generation bumps of
``prefix:*``, the deletion of one entry, or (other globs, whose deletions span many round trips)
a marker written after them (``__memo__:ack``, one per hash tag on a cluster), so that the
replication offset ``WAIT`` waits for covers every deletion before it. Fewer replicas than
asked within the timeout raise :class:`Unacknowledged`.
"""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from .. import envelope, layout
from ..exceptions import CacheUnavailable
from ..keys import matches, scope_pattern
from . import steps
from .requests import Requests
from .steps import Batch, Command, Flow, RunScript, ScanPage
from .topology import SingleServer

ACK_MARKER = (layout.INTERNAL_PREFIX + "ack").encode()
"""The key written before ``WAIT`` when an invalidation's last step may have written nothing."""
ACK_MARKER_MS = 10_000


class Unacknowledged(CacheUnavailable):
    """Redis applied an invalidation, but fewer replicas than ``wait_replicas`` acknowledged it
    within ``wait_timeout``: a failover could still lose it, so it is kept and applied again."""


class Invalidator:
    """The invalidation flows of one cache.

    ``replicas`` (``wait_replicas``): replicas that must acknowledge each invalidation within
    ``wait_ms`` milliseconds (0: none, no ``WAIT``).
    """

    def __init__(self, topology: SingleServer, requests: Requests, *, scan_threshold: int,
                 scan_count: int, replicas: int = 0, wait_ms: int = 500) -> None:
        self.topology = topology
        self.layout = topology.layout
        self.requests = requests
        self.scan_threshold = scan_threshold
        self.scan_count = scan_count
        self.replicas = replicas
        self.wait_ms = wait_ms

    def one(self, key: str, op: str) -> Flow[int]:
        """Delete one entry and its fence; 1 when a live entry was deleted."""
        step = self.requests.invalidate_one(key, op)
        if not self.replicas:
            return int((yield step))
        return int((yield from self.acknowledged(op, (step,)))[0])

    def pattern(self, pattern: str, op: str) -> Flow[int]:
        """Invalidate every entry matching the glob ``pattern``; returns the number deleted."""
        prefix = scope_pattern(pattern)
        marks: set[bytes] | None = set() if self.replicas else None
        if prefix is not None and prefix.count(":") == 2 and not self.layout.tagged:
            return (yield from self.row(prefix, op))
        if prefix is not None:
            yield from self.bump(prefix, op)  # acknowledged with its WAIT in the same pipeline
            # The unlinks matter too: a cluster bumps only the groups in its registry.
            deleted = yield from self.unlink_prefix(pattern, prefix, op, marks)
        else:
            yield from self.unfence_matching(pattern, op, marks)
            deleted = yield from self.unlink_scanned(pattern, op, marks)
        if marks:
            yield from self.acknowledged(op, tuple(
                Command(op, ("SET", mark, b"1", "PX", ACK_MARKER_MS)) for mark in sorted(marks)))
        return deleted

    def row(self, prefix: str, op: str) -> Flow[int]:
        """``prefix:*`` for a row (three segments, single server) in one round trip: replace its
        generation, unlink what its index lists (:data:`scripts.INVALIDATE_ROW`)."""
        index, table = layout.index_keys(prefix)
        step = RunScript(op, steps.INVALIDATE_ROW,
                         [self.layout.bump_keys(prefix, ())[0], index, table],
                         [envelope.new_token()])
        if not self.replicas:
            return int((yield step))
        return int((yield from self.acknowledged(op, (step,)))[0])

    def acknowledged(self, op: str, writes: tuple[Command | RunScript, ...]) -> Flow[list[Any]]:
        """``writes`` then ``WAIT replicas wait_ms`` in one pipeline (on a cluster, one per
        primary the writes went to: see the drivers); their replies. Raises
        :class:`Unacknowledged` when fewer replicas acknowledged them in time."""
        replies = yield Batch(op, (*writes, Command(op, ("WAIT", self.replicas, self.wait_ms))))
        acked = int(replies[-1])
        if acked < self.replicas:
            raise Unacknowledged(
                f"{op}: {acked} of the {self.replicas} replica(s) asked for (wait_replicas) "
                f"acknowledged the invalidation within {self.wait_ms} ms (wait_timeout)")
        return list(replies[:-1])

    def mark(self, marks: set[bytes] | None, key: bytes) -> None:
        """Add to ``marks`` the marker that makes ``WAIT`` cover a deletion of ``key``: the one
        marker of a single server, or one in ``key``'s slot on a cluster (by its hash tag)."""
        if marks is None:
            return
        if not self.layout.tagged:
            marks.add(ACK_MARKER)
            return
        start = key.find(b"{")
        end = key.find(b"}", start + 1) if start >= 0 else -1
        tag = key[start + 1:end] if end > start + 1 else key
        marker = ACK_MARKER + b":{" + tag + b"}"
        # Only a key of another client, named with a '}' but no hash tag, has no marker name
        # in its slot; its deletion is then covered only by the other markers of its primary.
        if key_slot(marker) == key_slot(key):
            marks.add(marker)

    def bump(self, prefix: str, op: str) -> Flow[None]:
        """Replace the generation(s) invalidating ``prefix:*`` takes effect through.

        Entries stamped with the old token are misses at once, and computations that observed
        it are refused (an evicted token is recreated fresh by the next claim: never the old one).
        On Redis Cluster, ``sql:*`` and ``*`` replace one copy per group (table) under the prefix,
        as listed in the groups registry: O(groups), one pipelined round trip per primary.
        """
        groups = yield from self.topology.groups_to_bump(op, prefix)
        bumps = tuple(RunScript(op, steps.BUMP, [key], [envelope.new_token()])
                      for key in self.layout.bump_keys(prefix, groups))
        if self.replicas and bumps:
            yield from self.acknowledged(op, bumps)
        elif len(bumps) == 1:
            yield bumps[0]
        elif bumps:
            yield Batch(op, bumps)

    def unlink_prefix(self, pattern: str, prefix: str, op: str,
                      marks: set[bytes] | None = None) -> Flow[int]:
        """Unlink the entries under ``prefix`` after its generation was replaced: from the
        prefix's index set when the keyspace is large, or always for a prefix deeper than a
        table (``sql:users:7``: one row of a table: its row's index, O(the row's entries); no
        index, nothing memo_redis wrote is left there); else by SCAN, which also finds keys
        other clients wrote. The markers acknowledging the unlinks go to ``marks``."""
        index = self.layout.index_key_for_prefix(prefix)
        if index:
            deep = prefix.count(":") >= 2
            if (deep or int((yield self.topology.dbsize(op))) > self.scan_threshold) and (
                    yield Command(op, ("EXISTS", index))):
                deleted = yield from self.unlink_indexed(index, pattern, prefix, op)
                if deleted:  # the index shares its entries' slot
                    self.mark(marks, index.encode())
                return deleted
            if deep and not self.layout.tagged:
                return 0
        return (yield from self.unlink_scanned(pattern, op, marks))

    def unlink_scanned(self, pattern: str, op: str,
                       marks: set[bytes] | None = None) -> Flow[int]:
        """SCAN + UNLINK of the keys matching ``pattern`` (never memo_redis's own), in batches
        of ``scan_count``; the markers acknowledging them go to ``marks``."""
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
                self.mark(marks, key)
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
        # The index of a table (2 segments) lists only keys under it, and the indexes of its
        # rows (drained with it). A row (3 segments) is :meth:`row`; deeper prefixes share their
        # row's index and need the pattern test.
        if prefix.count(":") == 1:
            rows = "" if self.layout.tagged else layout.ROW_INDEX_PREFIX
            return int((yield RunScript(op, steps.DRAIN_INDEX, [index], [rows])))
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

    def unfence_matching(self, pattern: str, op: str,
                         marks: set[bytes] | None = None) -> Flow[int]:
        """Delete the fence of every entry matching ``pattern``: each computation in flight armed
        one before its body ran, so none of them can store afterwards. The markers
        acknowledging the deletions go to ``marks``."""
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
                    self.mark(marks, fence)
                    if len(fences) >= self.scan_count:
                        deleted += yield from topology.remove(op, fences)
                        fences = []
            if cursor is None:
                break
        if fences:
            deleted += yield from topology.remove(op, fences)
        return deleted
