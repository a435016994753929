"""The state one run of :func:`~memo_redis.statements.analyze` shares between its steps."""

from __future__ import annotations

from .dialects import COMMON_FUNCTIONS, DIALECT_FUNCTIONS
from .placeholders import Placeholder

__all__ = ["AnalysisState"]


class AnalysisState:
    """What the steps of one analysis share: the text, the dialect and what was found in it."""

    def __init__(self, sql: str, dialect: str | None) -> None:
        self.text = sql  # the text analysed (REPLACE INTO is read as INSERT INTO)
        self.dialect = dialect
        self.functions = COMMON_FUNCTIONS | DIALECT_FUNCTIONS[dialect or ""]
        self.prefix = "memo_redis_param_"
        while self.prefix in sql.lower():
            self.prefix += "x_"
        self.placeholders: list[Placeholder] = []
        self.replace_into = False
