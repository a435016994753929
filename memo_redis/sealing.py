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

import hmac
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from memo_redis.exceptions import ConfigError, MemoRedisError
from memo_redis.key_rings import (
    GCM_TAG_SIZE,
    HEADER_SIZE,
    MAGIC,
    MODE_ENCRYPTED,
    MODE_SIGNED,
    NONCE_SIZE,
    TAG_SIZE,
    EncryptionKeys,
    KeyInput,
    SigningKeys,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EncryptionKeys", "KeyInput", "Sealer", "SigningKeys", "TamperedValue"]

_SIGNED_MIN: Final = HEADER_SIZE + TAG_SIZE
_PAYLOAD_AT: Final = HEADER_SIZE + NONCE_SIZE
_ENCRYPTED_MIN: Final = _PAYLOAD_AT + GCM_TAG_SIZE
_U32: Final = struct.Struct(">I").pack


class TamperedValue(MemoRedisError, ValueError):
    """A stored value is not a valid sealed value for this key name under the configured keys.

    Raised by :meth:`Sealer.open` for an unsealed value (written without the keys), a truncated
    or edited value, a value sealed for another key name, an unknown key id (a removed key) or an
    unsupported format. Callers treat it as a cache miss; the bytes were never deserialized.
    """


# --- key parsing -----------------------------------------------------------------------------


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
        buffer, begin, end = self.open_at(key_name, data, 0)
        return buffer[begin:end]

    def open_at(self, key_name: bytes, data: bytes, start: int) -> tuple[bytes, int, int]:
        """:meth:`open` of the sealed value ``data[start:]``, without copying it: the payload is
        ``buffer[begin:end]`` of the ``(buffer, begin, end)`` returned (``buffer`` is ``data``
        itself for a signed value, the plaintext for an encrypted one).

        ``data`` must be ``bytes``. Raises :class:`TamperedValue` as :meth:`open` does.
        """
        size = len(data) - start
        if size < HEADER_SIZE or data[start] != MAGIC:
            raise TamperedValue("not a sealed value")
        mode = data[start + 1]
        key_id = data[start + 2 : start + HEADER_SIZE]
        if mode == MODE_SIGNED:
            pair = self._pads.get(key_id)
            if pair is None:
                raise TamperedValue(_unknown_key("signed", "signing", self.signing, key_id))
            if size < _SIGNED_MIN:
                raise TamperedValue("truncated signed value")
            end = len(data) - TAG_SIZE
            inner = pair[0].copy()
            inner.update(_U32(len(key_name)) + key_name)
            inner.update(data[start:end])  # a bytes slice: cheaper than a memoryview's here
            outer = pair[1].copy()
            outer.update(inner.digest())
            if not hmac.compare_digest(outer.digest(), data[end:]):
                raise TamperedValue("signature mismatch (tampered, or sealed for another key)")
            return data, start + HEADER_SIZE, end
        if mode == MODE_ENCRYPTED:
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise TamperedValue(
                    _unknown_key("encrypted", "encryption", self.encryption, key_id))
            if size < _ENCRYPTED_MIN:
                raise TamperedValue("truncated encrypted value")
            view = memoryview(data)
            payload_at = start + _PAYLOAD_AT
            try:
                plain = cipher.decrypt(view[start + HEADER_SIZE : payload_at], view[payload_at:],
                                       data[start : start + HEADER_SIZE] + key_name)
            except self._invalid_tag:
                raise TamperedValue(
                    "decryption failed (tampered, or sealed for another key)"
                ) from None
            return plain, 0, len(plain)
        raise TamperedValue(f"unsupported sealed format (mode {mode:#04x})")

    def __copy__(self) -> Sealer:
        return self

    def __deepcopy__(self, memo: object) -> Sealer:
        return self


class _NoTag(Exception):
    """Stands in for cryptography's InvalidTag when no encryption key is configured."""


def _unknown_key(
    done: str, kind: str, keys: SigningKeys | EncryptionKeys | None, key_id: bytes
) -> str:
    if keys is None:
        return f"{done} value, but no {kind} key is configured"
    return (
        f"{done} with an unknown key (id {key_id.hex()}; configured: "
        f"{', '.join(keys.key_ids)})"
    )
