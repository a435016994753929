"""The commands the short way writes are the RESP bytes redis-py itself would send, with and
without hiredis (pure logic: no server)."""

from __future__ import annotations

import pytest
from redis.connection import PythonRespSerializer

from memo_redis.backend import fastpath

COMMANDS = [
    ("MGET", "__memo__:gen:", "sql:users:data:ab12"),
    ("EVALSHA", "0" * 40, 2, b"k1", "k\u00e9", b"\x00\xff", 0, 300_000, -1, b""),
]


def redis_py_bytes(args: tuple[object, ...]) -> bytes:
    serializer = PythonRespSerializer(buffer_cutoff=1 << 30, encode=lambda v: (
        v if isinstance(v, bytes) else str(v).encode()))
    return b"".join(serializer.pack(*args))


@pytest.mark.parametrize("args", COMMANDS)
@pytest.mark.parametrize("hiredis", [True, False])
def test_packed_commands_match_redis_py(args: tuple[object, ...], hiredis: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Strings (UTF-8), bytes, ints (negative and zero included) pack as redis-py packs them."""
    if not hiredis:
        monkeypatch.setattr(fastpath, "_pack_command", None)
    elif fastpath._pack_command is None:
        pytest.skip("hiredis is not installed (the hiredis extra)")
    assert fastpath.pack(args) == redis_py_bytes(args)  # type: ignore[arg-type]
