"""How one analysis names tables: schema-qualified, folded, resolved through aliases, and
told apart from common table expressions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dialects import fold
from .parsing import Refused
from .state import AnalysisState

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["TableNames"]


class TableNames(AnalysisState):
    """The analysis steps that name tables (see "Table names" in the package docstring)."""

    def resolve(self, ref: exp.Table, candidates: list[exp.Expr], verb: str
                ) -> exp.Table:
        """The table of ``candidates`` that ``ref`` (an alias or a name) designates."""
        from sqlglot import exp

        wanted = self.written_name(ref)
        for candidate in candidates:
            alias = candidate.args.get("alias")
            if (
                alias is not None and isinstance(alias.this, exp.Identifier)
                and not ref.db and wanted == fold(alias.this, self.dialect)
            ):
                if not isinstance(candidate, exp.Table):
                    raise Refused(f"{verb} writes {wanted}, which is not a table")
                return candidate
        for candidate in candidates:
            if (
                isinstance(candidate, exp.Table) and candidate.args.get("alias") is None
                and self.written_name(candidate) == wanted
            ):
                return candidate
        raise Refused(f"{verb} writes {wanted}, which is not one of the tables it joins")

    def written_name(self, table: exp.Table) -> str:
        """The name of a table the statement writes (refused when it is a function call)."""
        name = self.table_name(table, role="written")
        if name is None:
            raise Refused("it writes through a function call")
        return name

    def table_name(self, table: exp.Table, *, role: str) -> str | None:
        """``schema.table`` as reported, or None for a table-valued function call."""
        from sqlglot import exp

        this = table.this
        if isinstance(this, exp.Func):
            return None
        parts = [table.args.get("catalog"), table.args.get("db"), this]
        names: list[str] = []
        for part in parts:
            if part is None:
                continue
            if not isinstance(part, exp.Identifier):
                raise Refused(
                    f"a table {role} is named by a parameter, variable or expression "
                    f"({table.sql(dialect=self.dialect)})"
                )
            if str(part.this).startswith(self.prefix):
                raise Refused("a parameter placeholder stands where a table name is expected")
            names.append(fold(part, self.dialect))
        return ".".join(names)

    def is_cte_reference(self, table: exp.Table) -> bool:
        """Whether ``table`` names a common table expression in scope rather than a table.

        Inside a WITH list, a CTE sees the CTEs before it, and itself when the list is
        RECURSIVE; the statement body sees them all. A reference the dialects disagree on
        (a CTE naming itself without RECURSIVE, or one defined later) is taken as the table:
        at worst a needless read, never a missed one.
        """
        from sqlglot import exp

        if table.args.get("db") is not None or not isinstance(table.this, exp.Identifier):
            return False
        name = fold(table.this, self.dialect)
        child: exp.Expr = table
        node = table.parent
        owner: exp.Expr | None = None
        while node is not None:
            if isinstance(node, exp.With):
                ctes = node.expressions
                position = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
                if node.args.get("recursive"):
                    position += 1
                if name in self._cte_names(ctes[:position]):
                    return True
                owner = node.parent
            elif node is not owner:
                with_ = _with_of(node)
                if with_ is not None and name in self._cte_names(with_.expressions):
                    return True
            child, node = node, node.parent
        return False

    def _cte_names(self, ctes: list[exp.Expr]) -> set[str]:
        from sqlglot import exp

        names: set[str] = set()
        for cte in ctes:
            alias = cte.args.get("alias")
            ident = alias.this if alias is not None else None
            if isinstance(ident, exp.Identifier):
                names.add(fold(ident, self.dialect))
        return names


def _with_of(node: exp.Expr) -> exp.With | None:
    from sqlglot import exp

    for value in node.args.values():
        if isinstance(value, exp.With):
            return value
    return None
