"""The benchmark workload: a SQL-style fetch of 20 rows of 3 fields.

The decorated bodies return these precomputed rows, so a miss measures the cache's overhead
(lookup + store), not a database.
"""

from __future__ import annotations

import random
import string
from typing import Any

ROW_COUNT = 20
TABLE = "users"
LIMIT = 20

Rows = list[dict[str, Any]]


def sql_rows(count: int = ROW_COUNT) -> Rows:
    """Rows like a ``SELECT id, name, email FROM users LIMIT 20`` would return."""
    return [
        {"id": 1000 + i, "name": f"User Number {i}", "email": f"user{i}@example.com"}
        for i in range(count)
    ]


def random_text_rows(count: int = ROW_COUNT, seed: int = 7) -> Rows:
    """Rows whose text fields are random letters and digits (hard to compress).

    Used for the "<= 75% of the plain JSON string" storage target.
    """
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits

    def text(low: int, high: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    return [
        {
            "id": rng.randint(1, 10**9),
            "name": f"{text(5, 10)} {text(5, 12)}",
            "email": f"{text(6, 14)}@{text(4, 10)}.com",
        }
        for _ in range(count)
    ]


ROWS: Rows = sql_rows()
