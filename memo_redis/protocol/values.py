"""Values in and out of the stored envelope: encoding with size bounds, decoding with checks.

A stored value is served only when its stamp matches the generations read with it and its
fingerprint matches the lookup's; anything undecodable is a logged miss, never an exception.

With a :class:`~memo_redis.sealing.Sealer` (a signing or encryption key), every value is written
as a sealed envelope (see :mod:`memo_redis.envelope`) bound to its *logical* key name (the name
users, patterns and ``cache_key()`` show, never the hash-tagged cluster name), and a value read
is served only if its seal opens for that name. Anything else (a plain or unsealed value, a
value tampered with, copied from another key or sealed with a key no longer configured) is a
*rejected* value: a miss, counted in :attr:`ValueCodec.rejected` (by the lookups that meet it,
not again by the claim that follows a miss), logged once per key, never deserialized.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from .. import envelope
from ..exceptions import ConfigError
from ..sealing import Sealer, TamperedValue
from ..serialization import Codec, DecodeError, Serializer
from .entries import MISS, SeedFingerprint
from .opened import OpenedSeals

log = logging.getLogger("memo_redis")

_MAX_WARNED_KEYS: Final = 1024
_HEAD: Final = 2 + envelope.STAMP_SIZE


_ENCRYPT_HOW: Final = ("pass RedisCaching(encryption_key=...) or set "
                       "MEMO_REDIS_ENCRYPTION_KEY")
_SIGN_HOW: Final = "pass RedisCaching(signing_key=...) or set MEMO_REDIS_SIGNING_KEY"


def key_name(key: str) -> bytes:
    """The bytes of a logical key name that a seal binds (UTF-8, as redis-py sends it)."""
    return key.encode("utf-8", "surrogateescape")


class ValueCodec:
    """The cache's serializer, ``max_value_size`` and sealer, plus the once-only warnings they
    raise and the count of rejected values."""

    def __init__(self, serializer: Serializer, max_value_size: int | None,
                 sealer: Sealer | None = None) -> None:
        self.serializer = serializer
        self.max_value_size = max_value_size
        self.sealer = sealer
        """Seals every value written and opens every value read (None: values are not sealed)."""
        self._sealers: dict[bool | None, Sealer | None] = {None: sealer}
        if sealer is None:
            self._sealers[False] = None
        else:
            if sealer.encryption is not None:
                self._sealers[True] = Sealer(sealer.signing, sealer.encryption, encrypt=True)
            if sealer.signing is not None:
                self._sealers[False] = Sealer(sealer.signing, sealer.encryption, encrypt=False)
        self.opened = OpenedSeals()
        """The sealed values opened recently: reading one again skips the cryptography."""
        self.rejected = 0
        """Values read that were refused by the seal check (see the module docstring)."""
        self._count_lock = threading.Lock()
        self._warned: set[str] = set()
        self._warned_keys: set[str] = set()

    def sealer_for(self, encrypt: bool | None) -> Sealer | None:
        """The sealer of values written with ``encrypt`` (a function's ``encrypt=`` option; None:
        the cache's choice). Raises :class:`ConfigError` when this cache lacks the keys."""
        try:
            return self._sealers[encrypt]
        except KeyError:
            pass
        if encrypt:
            raise ConfigError(f"encrypt=True needs an encryption key on the cache: {_ENCRYPT_HOW}")
        raise ConfigError("encrypt=False on a cache that encrypts needs a signing key (once a key "
                          f"is configured, every value is sealed): {_SIGN_HOW}")

    def reject(self, key: str, problem: str, count: bool = True) -> None:
        """Count (when ``count``) a value refused by the seal check; log it once per key."""
        if count:
            with self._count_lock:
                self.rejected += 1
        if key not in self._warned_keys and len(self._warned_keys) >= _MAX_WARNED_KEYS:
            self.warn_once("rejected", "more stored values failed the seal check; they are "
                           "counted in rejected_values, no longer logged key by key")
            return
        self.warn_key(key, problem)

    def warn_once(self, kind: str, message: str) -> None:
        """Log ``message`` the first time a problem of ``kind`` happens."""
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("memo_redis: %s", message)

    def warn_key(self, key: str, problem: str) -> None:
        """Log a bad value once per key (bounded), so a bad entry does not flood logs."""
        if key in self._warned_keys:
            return
        if len(self._warned_keys) < _MAX_WARNED_KEYS:
            self._warned_keys.add(key)
        log.warning("memo_redis: the value stored at %r %s; treated as a miss", key, problem)

    def decode(self, key: str, raw: bytes | None, generations: list[bytes | None],
               fingerprint: bytes | None, count: bool = True
               ) -> tuple[Any, envelope.Envelope | None]:
        """The value held by ``raw`` if it is valid under ``generations``, else MISS.

        ``count``: count a rejected value (False for the claim that reads again what the
        lookup before it met)."""
        if raw is None:
            return MISS, None
        sealer = self.sealer
        if sealer is not None:
            return self._decode_sealed(key, raw, generations, fingerprint, sealer, count)
        env = envelope.unpack(raw)
        if env is None:
            # Plain JSON text: the seed deployment's format (no stamp, no fingerprint). Only the
            # key/value API (no fingerprint) and the seed's SQL reader (a SeedFingerprint) read
            # it; decorated functions write envelopes, so at their keys it came from elsewhere.
            if fingerprint is not None and not isinstance(fingerprint, SeedFingerprint):
                self.warn_key(key, "is not a memo_redis envelope (decorated functions write "
                              "only envelopes)")
                return MISS, None
            try:
                return self.serializer.decode_plain_json(raw, max_size=self.max_value_size), None
            except DecodeError as exc:
                self.warn_key(key, f"is neither memo_redis data nor readable JSON text ({exc})")
                return MISS, None
        if None in generations:
            return MISS, None
        if env.stamp != envelope.compute_stamp(generations):  # type: ignore[arg-type]
            return MISS, None
        if env.flags & envelope.FLAG_SEALED:
            self.reject(key, "is sealed (signed or encrypted), but this cache has no signing or "
                        "encryption key", count)
            return MISS, None
        return self._served(key, env, fingerprint)

    def _decode_sealed(self, key: str, raw: bytes, generations: list[bytes | None],
                       fingerprint: bytes | None, sealer: Sealer, count: bool
                       ) -> tuple[Any, envelope.Envelope | None]:
        """:meth:`decode` with a sealer: only a sealed envelope whose seal opens for ``key`` is
        read; nothing is deserialized before the seal has been checked."""
        if raw[:2] != envelope.SEALED_HEAD or len(raw) < _HEAD:
            self.reject(key, "is not sealed (written without this cache's signing or encryption "
                        "key)" if raw[:1] == envelope.MAGIC_BYTE else "is not sealed (a plain "
                        "value, written without this cache's signing or encryption key)", count)
            return MISS, None
        if None in generations:
            return MISS, None
        stamp = raw[2:_HEAD]
        if stamp != envelope.compute_stamp(generations):  # type: ignore[arg-type]
            return MISS, None
        opened = self.opened.get(key, raw)
        if opened is None:
            try:
                opened = sealer.open_at(key_name(key), raw, _HEAD)
            except TamperedValue as exc:
                self.reject(key, f"failed its seal check: {exc}", count)
                return MISS, None
            self.opened.put(key, raw, opened)
        env = envelope.unpack_sealed(stamp, *opened)
        if env is None:
            self.reject(key, "holds a malformed sealed envelope", count)
            return MISS, None
        return self._served(key, env, fingerprint)

    def _served(self, key: str, env: envelope.Envelope, fingerprint: bytes | None
                ) -> tuple[Any, envelope.Envelope | None]:
        """The value of a current envelope, if it is the one ``fingerprint`` asks for."""
        if fingerprint is not None and env.fingerprint != fingerprint:
            return MISS, None
        try:
            return self.serializer.decode(env.flags, env.body, max_size=self.max_value_size), env
        except DecodeError as exc:
            self.warn_key(key, f"could not be decoded ({exc})")
            return MISS, None

    def encode(self, key: str, value: Any, fingerprint: bytes | None = None,
               early: tuple[int, int] | None = None, *,
               encrypt: bool | None = None) -> tuple[bytes, bytes] | None:
        """Serialize ``value`` for ``key`` into (head, tail); None when it exceeds
        ``max_value_size``.

        A JSON value without fingerprint or refresh data is stored as plain JSON text, the seed's
        format (empty head): readable by any language. With a sealer, every value is a sealed
        envelope bound to ``key`` (the logical key name): encrypted or signed as ``encrypt``
        says (None: the cache's choice; see :meth:`sealer_for`).
        """
        serializer = self.serializer
        sealer = self.sealer if encrypt is None else self.sealer_for(encrypt)
        plain = (sealer is None and serializer.codec is Codec.JSON and fingerprint is None
                 and early is None and serializer.compress_threshold is None)
        if plain:
            flags, body = 0, serializer.encode_plain_json(value)
        else:
            # Over max_value_size the payload comes back uncompressed: readers refuse to inflate
            # more than that, so it is refused here too.
            flags, body = serializer.encode(value, max_size=self.max_value_size)
        if self.max_value_size is not None and len(body) > self.max_value_size:
            self.warn_once(
                "too-large",
                f"a value of {len(body)} bytes exceeds max_value_size={self.max_value_size} "
                "and is not cached",
            )
            return None
        if plain:
            return b"", body
        if sealer is not None:
            inner = envelope.pack_sealed(flags, body, fingerprint, early)
            return envelope.SEALED_HEAD, sealer.seal(key_name(key), inner)
        return envelope.pack_tail(flags, body, fingerprint, early)
