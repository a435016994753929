"""The package face as users meet it: star imports, ``__all__`` and the names the README uses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import memo_redis

ROOT = Path(__file__).resolve().parent.parent


def test_star_import_defines_every_name_in_all() -> None:
    """``from memo_redis import *`` works in a fresh interpreter and binds all of ``__all__``."""
    code = (
        "ns = {}\n"
        "exec('from memo_redis import *', ns)\n"
        "import memo_redis\n"
        "missing = [n for n in memo_redis.__all__ if n not in ns]\n"
        "assert not missing, missing\n"
        "print(len(memo_redis.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(memo_redis.__all__)


def test_all_has_no_duplicates() -> None:
    """``__all__`` lists each public name once."""
    names = list(memo_redis.__all__)
    assert len(set(names)) == len(names)


def test_every_name_the_readme_imports_exists() -> None:
    """Each ``from memo_redis import ...`` and ``memo_redis.X`` in the README resolves."""
    readme = (ROOT / "README.md").read_text()
    used: set[str] = set()
    blocks = re.findall(r"from memo_redis import \(([\w\s,]+)\)", readme)
    blocks += re.findall(r"from memo_redis import ([\w ,]+)$", readme, re.MULTILINE)
    for block in blocks:
        used.update(name.strip() for name in block.split(",") if name.strip())
    used.update(re.findall(r"`memo_redis\.([A-Za-z_]\w*)", readme))
    assert "cached" in used
    missing = []
    for name in sorted(used):
        if not hasattr(memo_redis, name):
            try:
                __import__(f"memo_redis.{name}")
            except ImportError:
                missing.append(name)
    assert not missing, f"README names not in memo_redis: {missing}"


def test_seed_module_names_import_as_the_seed_wrote_them() -> None:
    """The seed's module names redis_args, redis_instance and redis_constants import."""
    from memo_redis.redis_args import RedisArgs
    from memo_redis.redis_constants import DEFAULT_TTLS, ENVIRONMENT_VARIABLES
    from memo_redis.redis_instance import RedisCaching

    assert RedisArgs is memo_redis.RedisArgs
    assert RedisCaching is memo_redis.RedisCaching
    assert dict(DEFAULT_TTLS) == {"data": 300, "schema": 3600, "metadata": 7200, "count": 60}
    assert {"REDIS_URL", "REDIS_SOCKET_PATH", "REDIS_PASSWORD", "REDIS_DECODE_RESPONSES"} <= set(
        ENVIRONMENT_VARIABLES)
