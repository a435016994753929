"""Signing and encryption keys for :mod:`memo_redis.sealing`: parsing, ids and rotation.

A key ring holds one or more keys; the first seals, every one opens (rotation). Keys are
named by a short id stored with each sealed value, never by the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from memo_redis.exceptions import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EncryptionKeys", "KeyInput", "SigningKeys"]

MAGIC: Final = 0xF5
MODE_SIGNED: Final = 0x01
MODE_ENCRYPTED: Final = 0x02
HEADER_SIZE: Final = 6
KEY_ID_SIZE: Final = 4
TAG_SIZE: Final = 32
NONCE_SIZE: Final = 12
GCM_TAG_SIZE: Final = 16
MIN_SIGNING_KEY_SIZE: Final = 16
ENCRYPTION_KEY_SIZE: Final = 32

_SIGNED_MIN: Final = HEADER_SIZE + TAG_SIZE
_PAYLOAD_AT: Final = HEADER_SIZE + NONCE_SIZE
_ENCRYPTED_MIN: Final = _PAYLOAD_AT + GCM_TAG_SIZE
_BLOCK: Final = 64  # SHA-256 block size, for the HMAC pads
_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))
_U32: Final = struct.Struct(">I").pack
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*")
_HEX64: Final = re.compile(r"[0-9A-Fa-f]{64}")
_URLSAFE: Final = str.maketrans("-_", "+/")

KeyInput: TypeAlias = bytes | str | Sequence[bytes | str]
"""What ``parse`` accepts: one key, a comma-separated ``str`` of keys, or a sequence of keys."""


def _key_items(value: object, source: str, what: str) -> list[bytes | str]:
    """Split ``value`` into individual keys (a str is split on commas and items stripped)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [bytes(value)]
    if isinstance(value, Sequence):
        items: list[bytes | str] = []
        for item in value:
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, (bytes, bytearray, memoryview)):
                items.append(bytes(item))
            else:
                raise ConfigError(
                    f"{source}: each {what} must be bytes or str, got {type(item).__name__}"
                )
        if not items:
            raise ConfigError(f"{source}: no {what} given (an empty list)")
        return items
    raise ConfigError(f"{source} must be bytes, str or a list of them, got {type(value).__name__}")


def _position(index: int, count: int) -> str:
    return "the key" if count == 1 else f"key #{index + 1} of {count}"


def _key_id(kind: bytes, key: bytes) -> bytes:
    return hashlib.sha256(b"memo_redis key id:" + kind + b":" + key).digest()[:KEY_ID_SIZE]


def _index_keys(
    kind: bytes, keys: list[bytes], source: str
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Drop repeated keys (first wins) and compute their ids; refuse two keys sharing an id."""
    unique: list[bytes] = []
    ids: list[bytes] = []
    for key in keys:
        if key in unique:
            continue
        key_id = _key_id(kind, key)
        if key_id in ids:  # a 2**-32 event per pair of keys: replace one of them
            raise ConfigError(
                f"{source}: two different keys share the key id {key_id.hex()}; replace one"
            )
        unique.append(key)
        ids.append(key_id)
    return tuple(unique), tuple(ids)


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """The inner and outer SHA-256 states of HMAC(key), ready to ``copy()`` (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def _describe(kind: str, ids: tuple[bytes, ...]) -> str:
    count = f"{len(ids)} key" if len(ids) == 1 else f"{len(ids)} keys"
    return f"{kind}({count}, primary id {ids[0].hex()})"


_Ring = TypeVar("_Ring", bound="_KeyRing")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _KeyRing:
    """Keys by id, the first one sealing; what signing and encryption keys share."""

    _keys: tuple[bytes, ...]
    _ids: tuple[bytes, ...]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The keys' ids in hex, the sealing key's first."""
        return tuple(key_id.hex() for key_id in self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return _describe(type(self).__name__, self._ids)

    def __copy__(self: _Ring) -> _Ring:
        return self

    def __deepcopy__(self: _Ring, memo: object) -> _Ring:
        return self


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SigningKeys(_KeyRing):
    """HMAC-SHA256 signing keys; the first signs, all verify (rotation).

    Build with :meth:`parse`. The keys never appear in ``repr``/``str``; only their 4-byte ids.
    """

    _pads: dict[bytes, tuple[Any, Any]] = field(init=False)

    def __post_init__(self) -> None:
        pads = {key_id: _hmac_pads(key) for key_id, key in zip(self._ids, self._keys, strict=True)}
        object.__setattr__(self, "_pads", pads)

    @classmethod
    def parse(cls, value: KeyInput, *, source: str) -> SigningKeys:
        """Parse signing keys from code or from the environment.

        ``value`` is one key (``bytes``, or ``str`` taken as UTF-8), a sequence of keys, or a
        comma-separated ``str`` such as the ``MEMO_REDIS_SIGNING_KEY`` variable holds (items are
        stripped; a key containing a comma must be given in a list). Every key must have at
        least 16 bytes (32 random bytes recommended). ``source`` (the parameter or variable
        name) is what errors name: a :class:`~memo_redis.exceptions.ConfigError` never shows a
        key.

        >>> SigningKeys.parse("new-key-0123456789, old-key-0123456789", source="SIGNING_KEY")
        SigningKeys(2 keys, primary id ...)
        """
        items = _key_items(value, source, "signing key")
        keys: list[bytes] = []
        for index, item in enumerate(items):
            raw = item.encode("utf-8") if isinstance(item, str) else item
            where = _position(index, len(items))
            if not raw:
                raise ConfigError(f"{source}: {where} is empty")
            if len(raw) < MIN_SIGNING_KEY_SIZE:
                raise ConfigError(
                    f"{source}: {where} is {len(raw)} bytes long; a signing key needs at least "
                    f"{MIN_SIGNING_KEY_SIZE} bytes (32 random bytes recommended)"
                )
            keys.append(raw)
        return cls(*_index_keys(b"hmac-sha256", keys, source))


_aead: tuple[type[AESGCM], type[Exception]] | None = None


def _load_aead(source: str) -> tuple[type[AESGCM], type[Exception]]:
    """AESGCM and InvalidTag from the optional ``cryptography`` package, imported once."""
    global _aead
    if _aead is None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigError(
                f"{source}: encrypted values need the cryptography package; "
                "install memo_redis[crypto]"
            ) from None
        _aead = (AESGCM, InvalidTag)
    return _aead


def _decode_encryption_key(item: bytes | str, source: str, where: str) -> bytes:
    """32 raw bytes as they are, else base64 text (standard or urlsafe, padding optional)."""
    need = f"an encryption key must be {ENCRYPTION_KEY_SIZE} raw bytes or their base64 text"
    if isinstance(item, bytes):
        if len(item) == ENCRYPTION_KEY_SIZE:
            return item
        problem = f"{source}: {where} is {len(item)} bytes and not the base64 text of 32 bytes"
        try:
            text = item.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{problem}; {need}") from None
    else:
        text = item.strip()
        problem = f"{source}: {where} is not the base64 text of 32 bytes"
    if not text:
        raise ConfigError(f"{source}: {where} is empty")
    digits = text.translate(_URLSAFE).rstrip("=")
    if not (digits.isascii() and _BASE64.fullmatch(digits)) or len(digits) % 4 == 1:
        raise ConfigError(f"{problem} (not valid base64); {need}")
    raw = base64.b64decode(digits + "=" * (-len(digits) % 4), validate=True)
    if len(raw) != ENCRYPTION_KEY_SIZE:
        hint = "; hex is not accepted" if _HEX64.fullmatch(text) else ""
        raise ConfigError(f"{problem} (it decodes to {len(raw)} bytes{hint}); {need}")
    return raw


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class EncryptionKeys(_KeyRing):
    """AES-256-GCM keys; the first encrypts, all decrypt (rotation).

    Build with :meth:`parse`; needs the ``cryptography`` package (``memo_redis[crypto]``). The
    keys never appear in ``repr``/``str``; only their 4-byte ids.
    """

    _ciphers: dict[bytes, AESGCM] = field(init=False)
    _invalid_tag: type[Exception] = field(init=False)

    def __post_init__(self) -> None:
        aesgcm, invalid_tag = _load_aead("encryption keys")
        ciphers = {key_id: aesgcm(key) for key_id, key in zip(self._ids, self._keys, strict=True)}
        object.__setattr__(self, "_ciphers", ciphers)
        object.__setattr__(self, "_invalid_tag", invalid_tag)

    @classmethod
    def parse(cls, value: KeyInput, *, source: str) -> EncryptionKeys:
        """Parse AES-256 keys from code or from the environment.

        Each key is 32 raw ``bytes``, or the base64 text of 32 bytes (``str`` or ASCII
        ``bytes``; standard or urlsafe alphabet; padding optional), e.g. from
        ``base64.b64encode(os.urandom(32))``. ``value`` is one key, a sequence of keys, or a
        comma-separated ``str`` of base64 keys (the first encrypts, all decrypt). Errors are
        :class:`~memo_redis.exceptions.ConfigError` naming ``source`` and the problem, never a
        key; a missing ``cryptography`` package is one too.
        """
        _load_aead(source)
        items = _key_items(value, source, "encryption key")
        keys = [
            _decode_encryption_key(item, source, _position(index, len(items)))
            for index, item in enumerate(items)
        ]
        return cls(*_index_keys(b"aes-256-gcm", keys, source))


# --- the sealer ------------------------------------------------------------------------------
