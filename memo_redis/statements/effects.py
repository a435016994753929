"""What a parsed statement does: its kind, the tables it reads and the tables it writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dialects import REFUSED_FUNCTION_KEYS, TOP_LEVEL_REFUSALS
from .model import StatementKind
from .parsing import Refused
from .tables import TableNames

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["StatementEffects"]


class StatementEffects(TableNames):
    """The analysis steps from a parsed tree to its kind, reads and writes."""

    def classify(
        self, tree: exp.Expr
    ) -> tuple[StatementKind, frozenset[str], frozenset[str]]:
        """The kind, the tables read and the tables written of a parsed statement."""
        from sqlglot import exp

        key = tree.key
        if key == "command":
            verb = str(tree.this).upper()
            raise Refused(
                f"{verb} statements are not analysed: procedures, dynamic SQL and utility "
                "commands may read or write tables not named in their text"
            )
        if key in TOP_LEVEL_REFUSALS:
            raise Refused(TOP_LEVEL_REFUSALS[key])
        if self.replace_into and not isinstance(tree, exp.Insert):
            raise Refused("it cannot be parsed as REPLACE INTO")
        self._check_functions(tree)

        kind: StatementKind
        targets: list[exp.Table] = []
        excluded: list[exp.Table] = []  # Table nodes that name no table read (index names...)
        if isinstance(
            tree,
            (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.Values),
        ):
            kind = StatementKind.SELECT
        elif isinstance(tree, exp.Insert):
            kind = StatementKind.INSERT
        elif isinstance(tree, exp.Update):
            kind = StatementKind.UPDATE
        elif isinstance(tree, exp.Delete):
            kind = StatementKind.DELETE
        elif isinstance(tree, exp.Merge):
            kind = StatementKind.MERGE
        elif key == "truncatetable":
            kind = StatementKind.TRUNCATE
            targets += [t for t in tree.expressions if isinstance(t, exp.Table)]
        elif isinstance(tree, (exp.Create, exp.Drop)) or key in ("alter", "altertable"):
            kind = StatementKind.DDL
            self._ddl(tree, targets, excluded)
        elif key in ("transaction", "commit", "rollback", "set", "use"):
            return StatementKind.OTHER, self._reads_in_queries(tree), frozenset()
        else:
            raise Refused(
                f"it is not a statement this module analyses (sqlglot reads it as "
                f"{type(tree).__name__})"
            )

        # Every INSERT/UPDATE/DELETE/MERGE/SELECT INTO in the tree, including PostgreSQL's
        # data-modifying WITH clauses, in document order.
        first_write: StatementKind | None = None
        for node in tree.walk():
            write = self._dml(node, targets, excluded)
            if write is not None and first_write is None:
                first_write = write
        if kind is StatementKind.SELECT and first_write is not None:
            kind = first_write

        writes = frozenset(self.written_name(t) for t in targets)
        if kind.is_write and not writes:
            raise Refused("the table it writes cannot be determined")
        skip = {id(t) for t in targets} | {id(t) for t in excluded}
        reads = frozenset(
            name
            for table in tree.find_all(exp.Table)
            if id(table) not in skip
            and not isinstance(table.parent, exp.Table)  # SQLite's INDEXED BY <index>
            and not self.is_cte_reference(table)
            for name in [self.table_name(table, role="read")]
            if name is not None
        )
        return kind, reads, writes

    def _check_functions(self, tree: exp.Expr) -> None:
        from sqlglot import exp

        for node in tree.walk():
            if node.key in ("anonymous", "anonymousaggfunc"):
                name = node.name.lower()
                if isinstance(node.parent, exp.Dot):
                    schema = node.parent.this.sql(dialect=self.dialect)
                    raise Refused(
                        f"it calls {schema}.{node.name}(), a function named with its schema, "
                        "which may read or write any table"
                    )
                if name not in self.functions:
                    raise Refused(
                        f"it calls {node.name}(), which is not a built-in function known to "
                        "read no table: a user-defined function may read or write any table"
                    )
            elif node.key in REFUSED_FUNCTION_KEYS:
                raise Refused("it takes the next value of a sequence")

    def _reads_in_queries(self, tree: exp.Expr) -> frozenset[str]:
        """Tables read by subqueries of an OTHER statement (``SET @n = (SELECT ...)``)."""
        from sqlglot import exp

        names: set[str] = set()
        for table in tree.find_all(exp.Table):
            if table.find_ancestor(exp.Select) is None or self.is_cte_reference(table):
                continue
            name = self.table_name(table, role="read")
            if name is not None:
                names.add(name)
        return frozenset(names)

    def _ddl(self, tree: exp.Expr, targets: list[exp.Table], excluded: list[exp.Table]
             ) -> None:
        from sqlglot import exp

        key = tree.key
        kind = str(tree.args.get("kind") or ("TABLE" if key == "altertable" else "")).upper()
        verb = {"create": "CREATE", "drop": "DROP"}.get(key, "ALTER")
        if kind == "INDEX" and verb == "CREATE":
            index = tree.this
            table = index.args.get("table") if isinstance(index, exp.Index) else None
            if not isinstance(table, exp.Table):
                raise Refused("CREATE INDEX does not name the table of the index")
            targets.append(table)
            return
        if kind == "INDEX" and verb == "DROP":
            on = tree.args.get("cluster")
            table = on.this if isinstance(on, exp.OnProperty) else None
            if not isinstance(table, exp.Table):
                raise Refused("DROP INDEX does not name the table of the index")
            targets.append(table)
            excluded.extend(self._drop_names(tree))
            return
        if kind not in ("TABLE", "VIEW"):
            raise Refused(
                f"{verb} {kind or key.upper()} is not analysed: only DDL on tables, views "
                "and indexes names the tables it changes"
            )
        if verb == "DROP":
            targets.extend(self._drop_names(tree))
            return
        this = tree.this
        if isinstance(this, exp.Schema):
            this = this.this
        if not isinstance(this, exp.Table):
            raise Refused(f"{verb} {kind} does not name a table")
        targets.append(this)
        for action in tree.args.get("actions") or ():
            if action.key in ("renametable", "alterrename") and isinstance(action.this, exp.Table):
                targets.append(action.this)

    @staticmethod
    def _drop_names(tree: exp.Expr) -> list[exp.Table]:
        from sqlglot import exp

        names = [t for t in tree.args.get("tables") or () if isinstance(t, exp.Table)]
        if isinstance(tree.this, exp.Table):
            names.append(tree.this)
        return names

    def _dml(
        self, node: exp.Expr, targets: list[exp.Table], excluded: list[exp.Table]
    ) -> StatementKind | None:
        """Record the targets of one write node; return its kind (None if not a write)."""
        from sqlglot import exp

        if isinstance(node, exp.Select):
            into = node.args.get("into")
            if into is None:
                return None
            if self.dialect == "mysql" or not isinstance(into.this, exp.Table):
                raise Refused("SELECT ... INTO a variable or file is not analysed")
            targets.append(into.this)
            return StatementKind.DDL
        if not isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
            return None
        if _in_merge_clause(node):
            return None  # WHEN MATCHED THEN UPDATE ...: writes the MERGE's target
        if isinstance(node, exp.Insert):
            this = node.this
            if isinstance(this, exp.Schema):
                this = this.this
            if not isinstance(this, exp.Table):
                raise Refused("the table INSERT writes cannot be determined")
            targets.append(this)
            return StatementKind.INSERT
        if isinstance(node, exp.Merge):
            if not isinstance(node.this, exp.Table):
                raise Refused("the table MERGE writes cannot be determined")
            targets.append(node.this)
            return StatementKind.MERGE
        this = node.this
        if not isinstance(this, exp.Table):
            raise Refused(f"the table {node.key.upper()} writes cannot be determined")
        joined = [this] + [j.this for j in this.args.get("joins") or ()]
        if isinstance(node, exp.Update):
            targets.extend(self._update_targets(node, joined))
            return StatementKind.UPDATE
        refs = [t for t in node.args.get("tables") or () if isinstance(t, exp.Table)]
        if refs:  # MySQL: DELETE t1, t2 FROM t1 JOIN t2 ...
            excluded.extend(refs)
            using = [t for t in node.args.get("using") or () if isinstance(t, exp.Table)]
            candidates = joined + [
                x for u in using for x in [u, *(j.this for j in u.args.get("joins") or ())]
            ]
            for ref in refs:
                targets.append(self.resolve(ref, candidates, "DELETE"))
        else:  # DELETE FROM t ... / MySQL DELETE FROM t1, t2 USING ...
            targets.extend(t for t in joined if isinstance(t, exp.Table))
        return StatementKind.DELETE

    def _update_targets(self, node: exp.Update, joined: list[exp.Expr]) -> list[exp.Table]:
        """The tables an UPDATE changes: its target, or for MySQL's multi-table UPDATE the
        tables its SET clause assigns (all of them if a column is not qualified)."""
        from sqlglot import exp

        tables = [t for t in joined if isinstance(t, exp.Table)]
        if len(joined) == 1:
            return tables
        found: list[exp.Table] = []
        for assignment in node.expressions:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            if not isinstance(column, exp.Column) or not column.table:
                return tables
            ref = exp.Table(
                this=column.args["table"], db=column.args.get("db"),
                catalog=column.args.get("catalog"),
            )
            found.append(self.resolve(ref, joined, "UPDATE"))
        return found


def _in_merge_clause(node: exp.Expr) -> bool:
    from sqlglot import exp

    parent = node.parent
    while parent is not None:
        if parent.key == "when":
            return True
        if isinstance(parent, exp.Merge):
            return False
        parent = parent.parent
    return False
