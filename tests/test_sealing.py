"""Sealed values (memo_redis.sealing): signatures, encryption, key parsing. Pure: no server."""

from __future__ import annotations

import base64
import copy
import dataclasses
import doctest
import hashlib
import hmac
import json
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_redis import envelope, key_rings, sealing
from memo_redis.exceptions import ConfigError, MemoRedisError
from memo_redis.sealing import EncryptionKeys, Sealer, SigningKeys, TamperedValue

KEY_A = b"ns:users:fetch:aaaa"
KEY_B = b"ns:users:fetch:bbbb"
PAYLOAD = bytes(range(256)) + b"a 400-byte-ish payload " * 6

SIGN_1 = b"signing-key-one-0123456789abcdef"
SIGN_2 = b"signing-key-two-0123456789abcdef"
SIGN_3 = "signing-key-three-0123456789"
ENC_1 = bytes(range(27)) + b"\xfb\xff\xbf\x01\x02"  # base64 has "+/", urlsafe "-_"
ENC_2 = bytes(range(100, 132))
ENC_3 = bytes(range(200, 232))


def needs_crypto() -> None:
    pytest.importorskip("cryptography")


def signer(*keys: bytes | str) -> Sealer:
    return Sealer(SigningKeys.parse(list(keys), source="signing_key"))


def encrypter(*keys: bytes | str) -> Sealer:
    needs_crypto()
    return Sealer(encryption=EncryptionKeys.parse(list(keys), source="encryption_key"))


def _make(kind: str) -> Sealer:
    return signer(SIGN_1) if kind == "sign" else encrypter(ENC_1)


KINDS = ["sign", "encrypt"]


# --- round trips and format ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("payload", [b"", b"x", PAYLOAD, bytes(40_000)])
def test_round_trip(kind: str, payload: bytes) -> None:
    sealer = _make(kind)
    sealed = sealer.seal(KEY_A, payload)
    assert sealed != payload
    assert sealer.open(KEY_A, sealed) == payload
    assert type(sealer.open(KEY_A, sealed)) is bytes


@pytest.mark.parametrize("kind", KINDS)
def test_open_accepts_bytearray_and_memoryview(kind: str) -> None:
    sealer = _make(kind)
    sealed = sealer.seal(KEY_A, PAYLOAD)
    assert sealer.open(KEY_A, bytearray(sealed)) == PAYLOAD  # type: ignore[arg-type]
    assert sealer.open(KEY_A, memoryview(sealed)) == PAYLOAD  # type: ignore[arg-type]


def test_signed_layout_is_the_documented_one() -> None:
    """header | payload | HMAC-SHA256(key, u32be(len(name)) + name + header + payload)."""
    sealed = signer(SIGN_1).seal(KEY_A, PAYLOAD)
    key_id = hashlib.sha256(b"memo_redis key id:hmac-sha256:" + SIGN_1).digest()[:4]
    header = b"\xf5\x01" + key_id
    assert sealed[:6] == header
    assert sealed[6:-32] == PAYLOAD
    message = struct.pack(">I", len(KEY_A)) + KEY_A + header + PAYLOAD
    assert sealed[-32:] == hmac.digest(SIGN_1, message, "sha256")
    assert len(sealed) == len(PAYLOAD) + 38


def test_encrypted_layout_is_the_documented_one() -> None:
    """header | nonce (12) | AES-256-GCM(payload, aad=header + key name) with its 16-byte tag."""
    sealer = encrypter(ENC_1)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = sealer.seal(KEY_A, PAYLOAD)
    key_id = hashlib.sha256(b"memo_redis key id:aes-256-gcm:" + ENC_1).digest()[:4]
    header = b"\xf5\x02" + key_id
    assert sealed[:6] == header
    assert len(sealed) == len(PAYLOAD) + 34
    assert PAYLOAD[:64] not in sealed
    assert AESGCM(ENC_1).decrypt(sealed[6:18], sealed[18:], header + KEY_A) == PAYLOAD


def test_encryption_uses_fresh_nonces() -> None:
    sealer = encrypter(ENC_1)
    sealed = {sealer.seal(KEY_A, PAYLOAD) for _ in range(50)}
    assert len(sealed) == 50
    assert len({value[6:18] for value in sealed}) == 50


def test_long_signing_keys_follow_hmac() -> None:
    """Keys longer than SHA-256's 64-byte block are hashed first, as RFC 2104 says."""
    for key in (b"k" * 16, b"k" * 64, b"k" * 65, bytes(range(200))):
        sealed = signer(key).seal(KEY_A, PAYLOAD)
        message = struct.pack(">I", len(KEY_A)) + KEY_A + sealed[:6] + PAYLOAD
        assert sealed[-32:] == hmac.digest(key, message, "sha256")


def test_module_doctests() -> None:
    result = doctest.testmod(sealing, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_bit_flip_is_detected(kind: str) -> None:
    sealer = _make(kind)
    payload = PAYLOAD[:120]
    sealed = sealer.seal(KEY_A, payload)
    for position in range(len(sealed)):
        for bit in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[position] ^= bit
            with pytest.raises(TamperedValue):
                sealer.open(KEY_A, bytes(tampered))


@pytest.mark.parametrize("kind", KINDS)
def test_truncations_and_extensions_are_detected(kind: str) -> None:
    sealer = _make(kind)
    sealed = sealer.seal(KEY_A, PAYLOAD[:60])
    for end in range(len(sealed)):
        with pytest.raises(TamperedValue):
            sealer.open(KEY_A, sealed[:end])
    for start in range(1, 20):
        with pytest.raises(TamperedValue):
            sealer.open(KEY_A, sealed[start:])
    with pytest.raises(TamperedValue):
        sealer.open(KEY_A, sealed + b"\x00")


@pytest.mark.parametrize("kind", KINDS)
def test_value_copied_to_another_key_is_detected(kind: str) -> None:
    sealer = _make(kind)
    sealed = sealer.seal(KEY_A, PAYLOAD)
    for other in (KEY_B, KEY_A + b"x", KEY_A[:-1], b"", KEY_A.upper()):
        with pytest.raises(TamperedValue):
            sealer.open(other, sealed)


def test_key_name_and_payload_boundary_is_unambiguous() -> None:
    """Moving bytes between the key name and the payload does not keep the signature valid."""
    sealer = signer(SIGN_1)
    sealed = sealer.seal(b"ab", b"cd")
    forged = sealed[:6] + b"bcd" + sealed[-32:]
    with pytest.raises(TamperedValue):
        sealer.open(b"a", forged)


def test_value_from_another_deployment_is_detected() -> None:
    sealed = signer(SIGN_1).seal(KEY_A, PAYLOAD)
    with pytest.raises(TamperedValue, match="unknown key"):
        signer(SIGN_2).open(KEY_A, sealed)
    encrypted = encrypter(ENC_1).seal(KEY_A, PAYLOAD)
    with pytest.raises(TamperedValue, match="unknown key"):
        encrypter(ENC_2).open(KEY_A, encrypted)


def test_a_key_id_collision_still_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two deployments whose keys share an id: the wrong key does not verify or decrypt."""
    monkeypatch.setattr(key_rings, "_key_id", lambda kind, key: b"\x00\x00\x00\x00")
    with pytest.raises(TamperedValue, match="signature mismatch"):
        signer(SIGN_2).open(KEY_A, signer(SIGN_1).seal(KEY_A, PAYLOAD))
    with pytest.raises(TamperedValue, match="decryption failed"):
        encrypter(ENC_2).open(KEY_A, encrypter(ENC_1).seal(KEY_A, PAYLOAD))


def _unsealed_values() -> list[bytes]:
    head, tail = envelope.pack_tail(0, b"\x93\x01\x02\x03")
    return [
        b"",
        head + b"0123456789abcdef" + tail,  # an envelope as the store script writes it
        b"\xc1",
        json.dumps({"rows": [1, 2, 3]}).encode(),
        json.dumps("a string").encode(),
        b"[]",
        b"42",
        b"0123456789abcdef",  # a generation token
        PAYLOAD,
        b"\xf5",  # the magic alone
        b"\xf5\x01",
        b"\xf5\x03" + bytes(60),  # an unknown mode
        b"\xf5\x00" + bytes(60),
        b"\xf5\xff" + bytes(60),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("raw", _unsealed_values())
def test_values_written_without_sealing_are_refused(kind: str, raw: bytes) -> None:
    with pytest.raises(TamperedValue):
        _make(kind).open(KEY_A, raw)


def test_magic_is_never_the_start_of_an_envelope_or_of_text() -> None:
    assert sealing.MAGIC != envelope.MAGIC
    for encoding in ("utf-8", "utf-16", "utf-32", "utf-8-sig"):
        for text in ('{"a": 1}', "[1]", '"s"', "1", "true", " null", "\u00f5"):
            assert text.encode(encoding)[:1] != bytes([sealing.MAGIC])
    with pytest.raises(UnicodeDecodeError):
        bytes([sealing.MAGIC, 0x80, 0x80, 0x80]).decode("utf-8")


def test_signed_value_needs_signing_keys_and_encrypted_needs_encryption_keys() -> None:
    needs_crypto()
    signed = signer(SIGN_1).seal(KEY_A, PAYLOAD)
    encrypted = encrypter(ENC_1).seal(KEY_A, PAYLOAD)
    with pytest.raises(TamperedValue, match="no signing key"):
        encrypter(ENC_1).open(KEY_A, signed)
    with pytest.raises(TamperedValue, match="no encryption key"):
        signer(SIGN_1).open(KEY_A, encrypted)


def test_tampered_value_is_a_memo_redis_value_error() -> None:
    assert issubclass(TamperedValue, MemoRedisError)
    assert issubclass(TamperedValue, ValueError)


# --- rotation --------------------------------------------------------------------------------


def test_signing_rotation() -> None:
    old = signer(SIGN_1).seal(KEY_A, PAYLOAD)
    rotated = signer(SIGN_2, SIGN_1)
    assert rotated.open(KEY_A, old) == PAYLOAD
    new = rotated.seal(KEY_A, PAYLOAD)
    assert new[2:6] != old[2:6]  # signed with the first key
    assert signer(SIGN_2).open(KEY_A, new) == PAYLOAD
    with pytest.raises(TamperedValue, match="unknown key"):
        signer(SIGN_2).open(KEY_A, old)
    with pytest.raises(TamperedValue):
        signer(SIGN_1).open(KEY_A, new)


def test_encryption_rotation() -> None:
    old = encrypter(ENC_1).seal(KEY_A, PAYLOAD)
    rotated = encrypter(ENC_2, ENC_1)
    assert rotated.open(KEY_A, old) == PAYLOAD
    new = rotated.seal(KEY_A, PAYLOAD)
    assert encrypter(ENC_2).open(KEY_A, new) == PAYLOAD
    with pytest.raises(TamperedValue, match="unknown key"):
        encrypter(ENC_2).open(KEY_A, old)
    with pytest.raises(TamperedValue):
        encrypter(ENC_1).open(KEY_A, new)


def test_rotation_from_the_environment_variable() -> None:
    old = signer(SIGN_1).seal(KEY_A, PAYLOAD)
    env = f" {SIGN_2.decode()} , {SIGN_1.decode()} "
    rotated = Sealer(SigningKeys.parse(env, source="MEMO_REDIS_SIGNING_KEY"))
    assert rotated.open(KEY_A, old) == PAYLOAD
    assert signer(SIGN_2).open(KEY_A, rotated.seal(KEY_A, PAYLOAD)) == PAYLOAD


# --- both kinds of keys ----------------------------------------------------------------------


def test_both_configured_encrypts_without_signing_and_opens_both() -> None:
    needs_crypto()
    both = Sealer(
        SigningKeys.parse(SIGN_1, source="signing_key"),
        EncryptionKeys.parse(ENC_1, source="encryption_key"),
    )
    assert both.encrypts
    sealed = both.seal(KEY_A, PAYLOAD)
    assert sealed[1] == sealing.MODE_ENCRYPTED
    assert len(sealed) == len(PAYLOAD) + 34
    assert both.open(KEY_A, sealed) == PAYLOAD
    # values written before encryption was turned on stay readable, still verified
    assert both.open(KEY_A, signer(SIGN_1).seal(KEY_A, PAYLOAD)) == PAYLOAD
    with pytest.raises(TamperedValue):
        both.open(KEY_A, signer(SIGN_2).seal(KEY_A, PAYLOAD))

    signing_only = dataclasses.replace(both, encrypt=False)
    assert not signing_only.encrypts
    signed = signing_only.seal(KEY_A, PAYLOAD)
    assert signed[1] == sealing.MODE_SIGNED
    assert both.open(KEY_A, signed) == PAYLOAD
    assert signing_only.open(KEY_A, sealed) == PAYLOAD


def test_sealer_configuration_errors() -> None:
    needs_crypto()
    signing = SigningKeys.parse(SIGN_1, source="signing_key")
    encryption = EncryptionKeys.parse(ENC_1, source="encryption_key")
    with pytest.raises(ConfigError, match="needs signing keys, encryption keys"):
        Sealer()
    with pytest.raises(ConfigError, match="encrypt=True needs encryption keys"):
        Sealer(signing, encrypt=True)
    with pytest.raises(ConfigError, match="encrypt=False needs signing keys"):
        Sealer(encryption=encryption, encrypt=False)
    with pytest.raises(ConfigError, match="must be SigningKeys"):
        Sealer(SIGN_1)  # type: ignore[arg-type]
    same = SigningKeys.parse(ENC_1, source="signing_key")
    with pytest.raises(ConfigError, match="same key") as info:
        Sealer(same, encryption)
    assert repr(ENC_1) not in str(info.value)


def test_from_keys() -> None:
    assert Sealer.from_keys() is None
    sealer = Sealer.from_keys(SIGN_1)
    assert sealer is not None and not sealer.encrypts
    with pytest.raises(ConfigError, match="MEMO_REDIS_SIGNING_KEY"):
        Sealer.from_keys("short", signing_source="MEMO_REDIS_SIGNING_KEY")
    needs_crypto()
    both = Sealer.from_keys(SIGN_1, base64.b64encode(ENC_1).decode())
    assert both is not None and both.encrypts
    assert both.open(KEY_A, sealer.seal(KEY_A, PAYLOAD)) == PAYLOAD


# --- key parsing -----------------------------------------------------------------------------


def test_signing_keys_forms() -> None:
    assert len(SigningKeys.parse(SIGN_1, source="s")) == 1
    assert len(SigningKeys.parse(SIGN_3, source="s")) == 1
    assert len(SigningKeys.parse(bytearray(SIGN_1), source="s")) == 1  # type: ignore[arg-type]
    assert len(SigningKeys.parse([SIGN_1, SIGN_3], source="s")) == 2
    assert len(SigningKeys.parse((SIGN_1,), source="s")) == 1
    # the same key as str and bytes, and repeated keys, count once; the first still signs
    keys = SigningKeys.parse([SIGN_2, SIGN_1, SIGN_2.decode()], source="s")
    assert len(keys) == 2
    assert (
        keys.key_ids
        == SigningKeys.parse(f"{SIGN_2.decode()},{SIGN_1.decode()}", source="s").key_ids
    )
    # a str key and its UTF-8 bytes are the same key
    text_sealed = signer(SIGN_3).seal(KEY_A, PAYLOAD)
    assert signer(SIGN_3.encode()).open(KEY_A, text_sealed) == PAYLOAD


def test_a_comma_inside_a_key_needs_a_list() -> None:
    key = "first-half-0123456789,second-half-0123456789"
    assert len(SigningKeys.parse(key, source="s")) == 2
    assert len(SigningKeys.parse([key], source="s")) == 1


SECRET = "Sup3rS3cr3tValue"  # 16 characters: distinctive enough to search for in messages


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "the key is empty"),
        (b"", "the key is empty"),
        ("   ", "the key is empty"),
        (SECRET[:9], "the key is 9 bytes long"),
        (SECRET[:15].encode(), "the key is 15 bytes long"),
        (f"{SECRET}-long-enough,", "key #2 of 2 is empty"),
        (f"{SECRET}-long-enough,,{SECRET}-2", "key #2 of 3 is empty"),
        (f"{SECRET}-long-enough, {SECRET[:10]}", "key #2 of 2 is 10 bytes long"),
        ([f"{SECRET}-long-enough", SECRET[:12]], "key #2 of 2 is 12 bytes long"),
        ([], "no signing key given"),
        (12345678901234567890, "must be bytes, str or a list of them, got int"),
        ([SECRET, 7], "each signing key must be bytes or str, got int"),
    ],
)
def test_bad_signing_keys(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        SigningKeys.parse(value, source="MEMO_REDIS_SIGNING_KEY")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("MEMO_REDIS_SIGNING_KEY")
    assert problem in message
    assert SECRET[:5] not in message
    assert "12345678901234567890" not in message


def test_encryption_key_forms() -> None:
    needs_crypto()
    sealed = encrypter(ENC_1).seal(KEY_A, PAYLOAD)
    standard = base64.b64encode(ENC_1)
    urlsafe = base64.urlsafe_b64encode(ENC_1)
    assert b"-" in urlsafe or b"_" in urlsafe  # the test key exercises the urlsafe alphabet
    forms: list[bytes | str] = [
        ENC_1,
        standard.decode(),
        urlsafe.decode(),
        standard.decode().rstrip("="),
        urlsafe.decode().rstrip("="),
        f"  {standard.decode()}\n",
        standard,  # ASCII base64 bytes
    ]
    for form in forms:
        keys = EncryptionKeys.parse(form, source="encryption_key")
        assert Sealer(encryption=keys).open(KEY_A, sealed) == PAYLOAD


def test_encryption_keys_from_the_environment_variable() -> None:
    needs_crypto()
    old = encrypter(ENC_1).seal(KEY_A, PAYLOAD)
    env = f"{base64.b64encode(ENC_2).decode()}, {base64.urlsafe_b64encode(ENC_1).decode()}"
    keys = EncryptionKeys.parse(env, source="MEMO_REDIS_ENCRYPTION_KEY")
    assert len(keys) == 2
    rotated = Sealer(encryption=keys)
    assert rotated.open(KEY_A, old) == PAYLOAD
    assert encrypter(ENC_2).open(KEY_A, rotated.seal(KEY_A, PAYLOAD)) == PAYLOAD
    listed = EncryptionKeys.parse([ENC_2, base64.b64encode(ENC_1).decode()], source="e")
    assert listed.key_ids == keys.key_ids


SECRET_32 = b"Sup3rS3cr3tBytesSup3rS3cr3tBytes"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "the key is empty"),
        (SECRET_32[:16], "the key is 16 bytes and not the base64 text of 32 bytes"),
        (SECRET_32 + b"!", "the key is 33 bytes"),
        (bytes(range(128, 160)) + b"\xff", "the key is 33 bytes"),
        (base64.b64encode(SECRET_32[:16]).decode(), "it decodes to 16 bytes"),
        (base64.b64encode(SECRET_32 + b"xx").decode(), "it decodes to 34 bytes"),
        (SECRET_32.hex(), "hex is not accepted"),
        ("Sup3rS3cr3t!notbase64*" * 2, "not valid base64"),
        ("Sup3rS3cr3tééééé", "not valid base64"),
        ("A" * 41, "not valid base64"),  # 41 % 4 == 1 is no base64 length
        (f"{base64.b64encode(ENC_1).decode()},", "key #2 of 2 is empty"),
        (f"{base64.b64encode(ENC_1).decode()},Sup3rS3cr3t", "key #2 of 2 is not the base64"),
        ([ENC_1, SECRET_32[:20]], "key #2 of 2 is 20 bytes"),
        (3.5, "got float"),
    ],
)
def test_bad_encryption_keys(value: object, problem: str) -> None:
    needs_crypto()
    with pytest.raises(ConfigError) as info:
        EncryptionKeys.parse(value, source="MEMO_REDIS_ENCRYPTION_KEY")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("MEMO_REDIS_ENCRYPTION_KEY")
    assert problem in message
    assert "Sup3r" not in message and "S3cr3t" not in message
    assert base64.b64encode(ENC_1).decode() not in message


def test_missing_cryptography_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_rings, "_aead", None)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ConfigError, match=r"encryption_key: .*install memo_redis\[crypto\]"):
        EncryptionKeys.parse(ENC_1, source="encryption_key")
    with pytest.raises(ConfigError, match=r"MEMO_REDIS_ENCRYPTION_KEY: .*memo_redis\[crypto\]"):
        Sealer.from_keys(encryption_key="x", encryption_source="MEMO_REDIS_ENCRYPTION_KEY")
    # signing needs no extra package
    assert Sealer.from_keys(SIGN_1) is not None


def test_no_key_material_in_repr() -> None:
    needs_crypto()
    signing = SigningKeys.parse([SIGN_1, SIGN_3], source="s")
    encryption = EncryptionKeys.parse([ENC_1, base64.b64encode(ENC_2).decode()], source="e")
    sealer = Sealer(signing, encryption)
    texts = [repr(signing), str(signing), repr(encryption), str(encryption), repr(sealer)]
    texts.append(str(sealer))
    secrets = [SIGN_1, SIGN_3.encode(), ENC_1, ENC_2]
    for text in texts:
        for secret in secrets:
            for shown in (repr(secret), secret.hex(), base64.b64encode(secret).decode()):
                assert shown not in text
        assert "signing-key" not in text
    assert repr(signing) == f"SigningKeys(2 keys, primary id {signing.key_ids[0]})"
    assert repr(encryption).startswith("EncryptionKeys(2 keys, primary id ")
    assert "SigningKeys(2 keys" in repr(sealer) and "EncryptionKeys(2 keys" in repr(sealer)


def test_keys_and_sealers_are_immutable_and_copy_to_themselves() -> None:
    needs_crypto()
    sealer = Sealer(SigningKeys.parse(SIGN_1, source="s"), EncryptionKeys.parse(ENC_1, source="e"))
    assert copy.copy(sealer) is sealer
    assert copy.deepcopy(sealer) is sealer
    assert copy.deepcopy(sealer.signing) is sealer.signing
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealer.encrypt = False  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        sealer.extra = 1  # type: ignore[attr-defined]


def test_sealer_without_cryptography_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signing-only sealer never touches the cryptography package."""
    monkeypatch.setattr(key_rings, "_aead", None)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    sealer = signer(SIGN_1)
    assert sealer.open(KEY_A, sealer.seal(KEY_A, PAYLOAD)) == PAYLOAD
    with pytest.raises(TamperedValue, match="no encryption key"):
        sealer.open(KEY_A, b"\xf5\x02" + bytes(60))


# --- fuzz ------------------------------------------------------------------------------------


def _fuzz_sealers() -> list[Sealer]:
    sealers = [signer(SIGN_1, SIGN_2)]
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return sealers
    both = Sealer(
        SigningKeys.parse(SIGN_1, source="s"), EncryptionKeys.parse([ENC_1, ENC_2], source="e")
    )
    return [*sealers, both]


FUZZ_SEALERS = _fuzz_sealers()
_sealed_prefix = st.sampled_from(
    [b"", b"\xf5", b"\xf5\x01", b"\xf5\x02"]
    + [s.seal(KEY_A, PAYLOAD)[:6] for s in FUZZ_SEALERS]
    + [s.seal(KEY_A, PAYLOAD)[:18] for s in FUZZ_SEALERS]
)


@settings(max_examples=400, deadline=None)
@given(
    prefix=_sealed_prefix,
    rest=st.binary(max_size=300),
    key_name=st.sampled_from([KEY_A, KEY_B, b""]),
)
def test_open_on_random_bytes_only_raises_tampered_value(
    prefix: bytes, rest: bytes, key_name: bytes
) -> None:
    for sealer in FUZZ_SEALERS:
        try:
            sealer.open(key_name, prefix + rest)
        except TamperedValue:
            continue
        pytest.fail("random bytes opened")  # a forgery by chance: 2**-128 at best


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=2000),
    key_name=st.binary(max_size=100),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_round_trip_and_single_flip_fuzz(
    payload: bytes, key_name: bytes, position: int, bit: int
) -> None:
    for sealer in FUZZ_SEALERS:
        sealed = sealer.seal(key_name, payload)
        assert sealer.open(key_name, sealed) == payload
        tampered = bytearray(sealed)
        tampered[position % len(sealed)] ^= 1 << bit
        with pytest.raises(TamperedValue):
            sealer.open(key_name, bytes(tampered))
