"""Request builders and reply parsers of the protocol's single-round-trip steps.

Each method builds the step (a :class:`~.steps.Command` or :class:`~.steps.RunScript`) or parses
its reply; flows (:mod:`.operations`, :mod:`.invalidation`, :mod:`.readthrough`) combine them.
The lock and fence semantics are explained in :mod:`memo_redis.scripts`.
"""

from __future__ import annotations

import random
from typing import Any, Final

from .. import envelope
from ..layout import KeyLayout
from . import steps
from .entries import Claim, Lookup, stamp_of
from .steps import Command, RunScript
from .values import ValueCodec

PRUNE_RATE: Final = 1 / 16
"""Share of stores that also drop a few expired members from their index set."""


class Requests:
    """The steps that touch one entry, named for this cache's layout and timeouts."""

    def __init__(self, layout: KeyLayout, codec: ValueCodec, *, lock_timeout_ms: int,
                 fence_ttl_ms: int) -> None:
        self.layout = layout
        self.codec = codec
        self.lock_timeout_ms = lock_timeout_ms
        self.fence_ttl_ms = fence_ttl_ms

    # -- lookups -----------------------------------------------------------------------------

    def lookup(self, key: str, op: str = "lookup") -> Command:
        """Read ``key`` and the generations guarding it: one MGET."""
        return Command(op, ("MGET", *self.layout.lookup_keys(key)))

    def parse_lookup(self, key: str, raws: list[bytes | None], fingerprint: bytes | None,
                     fence: bytes | None = None, count: bool = True) -> Lookup:
        """``raws`` is what a lookup reads: the generations, then the value.

        ``count=False`` for a claim's reply, which reads the value again after the lookup that
        missed: a value failing its seal check there is not counted a second time."""
        generations = raws[:-1]
        value, env = self.codec.decode(key, raws[-1], generations, fingerprint, count)
        return Lookup(value, generations, fence, env)

    # -- claims ------------------------------------------------------------------------------

    def claim(self, key: str, seen: Lookup | None, token: bytes | None) -> RunScript:
        """:data:`scripts.CLAIM` of ``key``: arm its fence (creating missing generations), read
        it again, and (with ``token``) take the lock named after the state ``seen`` names (or a
        fresh fence this call proposes, when ``seen`` has none)."""
        lay = self.layout
        gen_keys = lay.generation_keys(key)
        proposal = envelope.new_token()
        fresh = [envelope.new_token() for _ in gen_keys]
        value_key = lay.physical(key)
        if token is None or seen is None:
            lock, stamp, expected = value_key, b"", b""
        else:
            # What the caller expects to find: what it saw, or what this claim creates.
            expected = seen.fence if seen.fence is not None else proposal
            stamp = envelope.compute_stamp(
                [g if g is not None else f for g, f in zip(seen.generations, fresh, strict=True)])
            lock = lay.lock_key(key, stamp + expected[:8])
        keys = [lock, *gen_keys, lay.fence_key(key), value_key]
        args: list[Any] = [len(gen_keys), token or b"", self.lock_timeout_ms, expected, proposal,
                           self.fence_ttl_ms, stamp, *fresh]
        return RunScript("lock", steps.CLAIM, keys, args)

    def parse_claim(self, key: str, reply: list[Any], fingerprint: bytes | None) -> Claim:
        """The :class:`Claim` of a :meth:`claim` reply."""
        outcome, state = reply
        raws = [*state[:-2], state[-1]]
        return Claim(outcome == 1, outcome == 0,
                     self.parse_lookup(key, raws, fingerprint, state[-2], count=False))

    def lock_held(self, key: str, seen: Lookup) -> Command:
        """Is the single-flight lock of ``key`` under ``seen`` (a claim's lookup) held?"""
        return Command("lock", ("EXISTS", self.layout.lock_key(key, stamp_of(seen))))

    def release(self, key: str, seen: Lookup, token: bytes, drop_fence: bool = True
                ) -> RunScript:
        """Compare-and-delete of the lock ``token`` holds, and of the fence ``seen`` armed when
        ``drop_fence`` (its result is not stored)."""
        fence = seen.fence if drop_fence and seen.fence is not None else b""
        return RunScript("unlock", steps.RELEASE,
                         [self.layout.lock_key(key, stamp_of(seen)), self.layout.fence_key(key)],
                         [token, fence])

    # -- stores ------------------------------------------------------------------------------

    def store(self, key: str, parts: tuple[bytes, bytes], ttl_ms: int | None,
              seen: Lookup | None, token: bytes | None, *, checked: bool = True) -> RunScript:
        """:data:`scripts.STORE` of an encoded value; with ``seen`` (a claim's lookup) and
        ``checked``, admitted only if its fence and generations are unchanged; with ``token``,
        releasing the lock taken under ``seen``."""
        lay = self.layout
        gens = lay.generation_keys(key)
        lock = (lay.lock_key(key, stamp_of(seen))
                if token is not None and seen is not None else "")
        if not checked:
            seen = None
        index, parent = lay.index_keys(key)
        value_key = lay.physical(key)
        keys = [*gens, lay.fence_key(key), value_key, lock or value_key, index or value_key,
                parent or index or value_key]
        ttl_s = 0 if ttl_ms is None else -(-ttl_ms // 1000)
        mode = ("c" if seen is not None else "u") + ("p" if random.random() < PRUNE_RATE else "")
        args: list[Any] = [
            len(gens), mode, parts[0], parts[1], ttl_ms or 0,
            token or b"", (seen.fence or b"") if seen is not None else b"", ttl_s if index else -1,
        ]
        if not index:
            keys[-2] = keys[-1] = ""  # no parent either; the script reads parent == idx as none
        if seen is not None:
            args.extend(g or b"" for g in seen.generations)
        else:
            args.extend(envelope.new_token() for _ in gens)
        return RunScript("store", steps.STORE, keys, args)

    # -- invalidation of one entry ---------------------------------------------------------

    def invalidate_one(self, key: str, op: str) -> RunScript:
        """Delete one entry and its fence (:data:`scripts.INVALIDATE_ONE`)."""
        return RunScript(op, steps.INVALIDATE_ONE,
                         [self.layout.physical(key), self.layout.fence_key(key)], [])
