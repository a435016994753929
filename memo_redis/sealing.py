"""Sealed values: HMAC-SHA256 signatures and AES-256-GCM encryption of stored bytes.

A :class:`Sealer` turns payload bytes into sealed bytes bound to a key name, and back::

    >>> sealer = Sealer(SigningKeys.parse(b"0123456789abcdef-example", source="signing_key"))
    >>> sealed = sealer.seal(b"ns:users:1", b"payload")
    >>> sealer.open(b"ns:users:1", sealed)
    b'payload'
    >>> sealer.open(b"ns:users:2", sealed)
    Traceback (most recent call last):
    ...
    memo_redis.sealing.TamperedValue: signature mismatch (tampered, or sealed for another key)

This module is pure (no Redis, no environment, no deserialization): :meth:`Sealer.open` returns
payload bytes or raises :class:`TamperedValue`; what the bytes mean is the caller's business.

Stored format
-------------
**This layout is a storage format: changing it orphans sealed entries.** Every sealed value
starts with a 6-byte header::

    0xF5 | mode (1) | key id (4) | ...

* ``0xF5`` never occurs in UTF-8 text, is not the envelope's ``0xC1`` and is no JSON or BOM
  start byte, so a plain JSON value, an envelope or a generation token is never taken for a
  sealed value (and is refused by :meth:`Sealer.open`).
* ``mode`` is the format version and the kind of seal: ``0x01`` signed, ``0x02`` encrypted.
  Other values are refused; new formats get new mode bytes.
* ``key id``: the first 4 bytes of ``sha256(b"memo_redis key id:<kind>:" + key)``, where
  ``<kind>`` is ``hmac-sha256`` or ``aes-256-gcm``, so that during a rotation the right key
  is found with one dict lookup. It identifies a key without revealing it (32 bits of a hash
  of a secret of at least 16 bytes; the tag itself is a better guessing oracle anyway).

Signed (mode ``0x01``), 38 bytes of overhead::

    header (6) | payload | tag (32)
    tag = HMAC-SHA256(key, u32be(len(key_name)) + key_name + header + payload)

The tag is the full 32-byte HMAC: no truncation to reason about, for 16 bytes per value. The
length prefix makes the (key name, value) split unambiguous and the header is covered, so
neither a value copied to another key nor an edited key id or mode verifies.

Encrypted (mode ``0x02``), 34 bytes of overhead::

    header (6) | nonce (12) | AES-256-GCM(key, nonce, payload, aad=header + key_name) (+16 tag)

The nonce is random (``os.urandom``). Random 96-bit nonces bound the number of values one key
should encrypt: after ``n`` seals the chance that two share a nonce is about ``n**2 / 2**97``
(``2**-33`` after ``2**32`` seals, the NIST SP 800-38D limit; ``2**32`` is about 50 days of 1,000
stores per second): rotate encryption keys well before a key has sealed ``2**32`` values.

When both signing and encryption keys are configured, :meth:`Sealer.seal` encrypts and does not
also sign: AES-GCM already authenticates the ciphertext, the header and the key name with a
128-bit tag, so an HMAC on top would cost time and 38 bytes for no added integrity. The signing
keys then still open signed values (written before encryption was turned on, or by functions
that do not encrypt).

What a seal does not do: it does not make a value fresh. Someone who can write to Redis can put
back an older value sealed for the same key name under a still-configured key (a replay), or
delete values; key names, value sizes and the key ids are visible to readers of Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from memo_redis.exceptions import ConfigError, MemoRedisError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EncryptionKeys", "KeyInput", "Sealer", "SigningKeys", "TamperedValue"]

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


class TamperedValue(MemoRedisError, ValueError):
    """A stored value is not a valid sealed value for this key name under the configured keys.

    Raised by :meth:`Sealer.open` for an unsealed value (written without the keys), a truncated
    or edited value, a value sealed for another key name, an unknown key id (a removed key) or an
    unsupported format. Callers treat it as a cache miss; the bytes were never deserialized.
    """


# --- key parsing -----------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True, eq=False)
class Sealer:
    """Seals payload bytes for a key name, and opens them; immutable and thread-safe.

    ``signing`` and ``encryption`` are optional but at least one is required. :meth:`seal`
    encrypts when ``encrypt`` is true and signs when it is false; ``encrypt=None`` (the default)
    encrypts whenever encryption keys are given. :meth:`open` accepts a value sealed with any
    configured key: signed values when signing keys are given, encrypted values when encryption
    keys are given, whatever ``encrypt`` says (so turning encryption on or off keeps existing
    entries readable; without the keys, neither kind can be forged).

    ``dataclasses.replace(sealer, encrypt=True)`` gives a per-function variant.
    """

    signing: SigningKeys | None = None
    encryption: EncryptionKeys | None = None
    encrypt: bool | None = field(default=None, kw_only=True)
    # Derived once, so that seal/open do no more than a few lookups besides the crypto.
    _header: bytes = field(init=False, repr=False)
    _sign_with: tuple[Any, Any] | None = field(init=False, repr=False)
    _encrypt_with: AESGCM | None = field(init=False, repr=False)
    _pads: dict[bytes, tuple[Any, Any]] = field(init=False, repr=False)
    _ciphers: dict[bytes, AESGCM] = field(init=False, repr=False)
    _invalid_tag: type[Exception] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        signing, encryption = self.signing, self.encryption
        if signing is not None and not isinstance(signing, SigningKeys):
            raise ConfigError(f"signing must be SigningKeys, got {type(signing).__name__}")
        if encryption is not None and not isinstance(encryption, EncryptionKeys):
            raise ConfigError(f"encryption must be EncryptionKeys, got {type(encryption).__name__}")
        if signing is None and encryption is None:
            raise ConfigError("a Sealer needs signing keys, encryption keys, or both")
        encrypt = encryption is not None if self.encrypt is None else self.encrypt
        if encrypt and encryption is None:
            raise ConfigError("encrypt=True needs encryption keys (encryption_key)")
        if not encrypt and signing is None:
            raise ConfigError("encrypt=False needs signing keys (signing_key)")
        if signing and encryption and set(signing._keys) & set(encryption._keys):
            raise ConfigError(
                "the same key is configured for signing and for encryption; use independent keys"
            )
        set_ = object.__setattr__
        set_(self, "_pads", {} if signing is None else signing._pads)
        set_(self, "_ciphers", {} if encryption is None else encryption._ciphers)
        set_(self, "_invalid_tag", _NoTag if encryption is None else encryption._invalid_tag)
        set_(self, "_sign_with", None)
        set_(self, "_encrypt_with", None)
        if encrypt:
            assert encryption is not None
            set_(self, "_header", bytes((MAGIC, MODE_ENCRYPTED)) + encryption._ids[0])
            set_(self, "_encrypt_with", encryption._ciphers[encryption._ids[0]])
        else:
            assert signing is not None
            set_(self, "_header", bytes((MAGIC, MODE_SIGNED)) + signing._ids[0])
            set_(self, "_sign_with", signing._pads[signing._ids[0]])

    @classmethod
    def from_keys(
        cls,
        signing_key: KeyInput | None = None,
        encryption_key: KeyInput | None = None,
        *,
        encrypt: bool | None = None,
        signing_source: str = "signing_key",
        encryption_source: str = "encryption_key",
    ) -> Sealer | None:
        """Parse raw key settings into a Sealer; ``None`` when neither is given.

        The sources name the settings in errors (pass the environment variable's name when the
        value came from there).
        """
        if signing_key is None and encryption_key is None:
            return None
        signing = None
        if signing_key is not None:
            signing = SigningKeys.parse(signing_key, source=signing_source)
        encryption = None
        if encryption_key is not None:
            encryption = EncryptionKeys.parse(encryption_key, source=encryption_source)
        return cls(signing, encryption, encrypt=encrypt)

    @property
    def encrypts(self) -> bool:
        """Whether :meth:`seal` encrypts (else it signs)."""
        return self._encrypt_with is not None

    def seal(self, key_name: bytes, payload: bytes) -> bytes:
        """Seal ``payload`` for ``key_name``: sign it, or encrypt it (see the class docstring).

        ``key_name`` is bound into the seal: the result opens only under the same name.
        """
        header = self._header
        pair = self._sign_with
        if pair is not None:
            inner = pair[0].copy()
            inner.update(_U32(len(key_name)) + key_name + header)
            inner.update(payload)
            outer = pair[1].copy()
            outer.update(inner.digest())
            return b"".join((header, payload, outer.digest()))
        nonce = os.urandom(NONCE_SIZE)
        cipher = self._encrypt_with
        assert cipher is not None
        return b"".join((header, nonce, cipher.encrypt(nonce, payload, header + key_name)))

    def open(self, key_name: bytes, data: bytes) -> bytes:
        """The payload sealed in ``data`` for ``key_name``.

        ``data`` is ``bytes`` (or a bytearray or memoryview, copied). Raises
        :class:`TamperedValue` when it is not a sealed value (written without
        sealing), was modified or truncated, was sealed for another key name, names a key that
        is not configured, or uses an unknown format. Never deserializes anything.
        """
        if type(data) is not bytes:  # bytearray, memoryview: slices must be hashable bytes
            data = bytes(data)
        if len(data) < HEADER_SIZE or data[0] != MAGIC:
            raise TamperedValue("not a sealed value")
        mode = data[1]
        if mode == MODE_SIGNED:
            pair = self._pads.get(data[2:HEADER_SIZE])
            if pair is None:
                raise TamperedValue(_unknown_key("signed", "signing", self.signing, data))
            if len(data) < _SIGNED_MIN:
                raise TamperedValue("truncated signed value")
            view = memoryview(data)
            inner = pair[0].copy()
            inner.update(_U32(len(key_name)) + key_name)
            inner.update(view[:-TAG_SIZE])
            outer = pair[1].copy()
            outer.update(inner.digest())
            if not hmac.compare_digest(outer.digest(), view[-TAG_SIZE:]):
                raise TamperedValue("signature mismatch (tampered, or sealed for another key)")
            return data[HEADER_SIZE:-TAG_SIZE]
        if mode == MODE_ENCRYPTED:
            cipher = self._ciphers.get(data[2:HEADER_SIZE])
            if cipher is None:
                raise TamperedValue(_unknown_key("encrypted", "encryption", self.encryption, data))
            if len(data) < _ENCRYPTED_MIN:
                raise TamperedValue("truncated encrypted value")
            view = memoryview(data)
            try:
                return cipher.decrypt(
                    view[HEADER_SIZE:_PAYLOAD_AT], view[_PAYLOAD_AT:], data[:HEADER_SIZE] + key_name
                )
            except self._invalid_tag:
                raise TamperedValue(
                    "decryption failed (tampered, or sealed for another key)"
                ) from None
        raise TamperedValue(f"unsupported sealed format (mode {mode:#04x})")

    def __copy__(self) -> Sealer:
        return self

    def __deepcopy__(self, memo: object) -> Sealer:
        return self


class _NoTag(Exception):
    """Stands in for cryptography's InvalidTag when no encryption key is configured."""


def _unknown_key(
    done: str, kind: str, keys: SigningKeys | EncryptionKeys | None, data: bytes
) -> str:
    if keys is None:
        return f"{done} value, but no {kind} key is configured"
    return (
        f"{done} with an unknown key (id {data[2:HEADER_SIZE].hex()}; configured: "
        f"{', '.join(keys.key_ids)})"
    )
