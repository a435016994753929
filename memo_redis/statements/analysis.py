"""One run of :func:`~memo_redis.statements.analyze`: from the text to a :class:`Statement`.

The text is tokenized, checked for comments and strings a server could read differently,
its placeholders are set aside, it is parsed, classified (:mod:`.effects`), and its
normalized text is generated and checked to parse back to the same statement.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .effects import StatementEffects
from .model import Statement, StatementKind
from .parsing import Refused, Token, first_line, parse_all
from .placeholders import PLACEHOLDER_RE, Placeholder, is_opaque

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlglot import exp

__all__ = ["Analysis"]

# An odd number of backslashes, then a quote: escaped in MySQL's default mode, not with
# NO_BACKSLASH_ESCAPES (nor in standard SQL), so the string's extent depends on the server.
_ESCAPED_QUOTE = re.compile(r"(?<!\\)(?:\\\\)*\\['\"]")


class Analysis(StatementEffects):
    """One run of :func:`analyze` (the state shared by its steps)."""

    # ---- text -> tree

    def run(self) -> Statement:
        """The Statement the text makes (kind, reads, writes, normalized text); raises Refused."""
        tokens = self._tokenize(self.text)
        first = tokens[0]
        verb = first.text.upper()
        # sqlglot keeps MySQL/SQLite's REPLACE INTO and MySQL's RENAME TABLE as opaque
        # commands. REPLACE INTO has an INSERT's tables: it is parsed as one (the word is
        # swapped for "INSERT " of the same length, so positions in the text do not move).
        if verb == "REPLACE" and self.dialect != "postgres":
            self.text = self.text[: first.start] + "INSERT " + self.text[first.end + 1 :]
            self.replace_into = True
            tokens = self._tokenize(self.text)
        elif verb == "RENAME" and self.dialect in ("mysql", None):
            blank = " " * len(first.text)
            tokens = self._tokenize(self.text[: first.start] + blank + self.text[first.end + 1 :])
            return self._rename(tokens)
        self._check_comments(tokens)
        tree = self._parse(self._substitute(tokens))
        self._check_placeholders(tree)
        kind, reads, writes = self.classify(tree)
        return Statement(kind=kind, reads=reads, writes=writes, normalized=self._normalize(tree))

    def _tokenize(self, text: str) -> Sequence[Token]:
        from sqlglot.dialects.dialect import Dialect

        try:
            tokens = Dialect.get_or_raise(self.dialect).tokenize(text)
        except Exception as exc:  # TokenError, or a tokenizer bug: never guess
            raise Refused(f"it cannot be tokenized ({first_line(exc)})") from None
        if not tokens:
            raise Refused("it is empty")
        return tokens

    def _check_comments(self, tokens: Sequence[Token]) -> None:
        """Refuse comments and strings that a server could read differently from the parser.

        MySQL runs the SQL inside ``/*! ... */``, and whether ``\\'`` ends a string depends on
        its sql_mode (``NO_BACKSLASH_ESCAPES``). In the generic dialect the server is unknown,
        so comments whose extent differs between servers are refused too: ``--`` not followed
        by a space (not a comment in MySQL: ``1--(SELECT ...)`` subtracts), and nested
        ``/* /* */ */`` (PostgreSQL nests them, MySQL and SQLite do not).
        """
        if self.dialect not in ("mysql", None):
            return
        for token in tokens:
            if token.token_type.name.endswith("STRING") and _ESCAPED_QUOTE.search(
                self.text, token.start, token.end + 1
            ):
                raise Refused(
                    "a string holds a backslash before a quote, which ends the string or not "
                    "depending on the server's sql_mode (NO_BACKSLASH_ESCAPES); double the "
                    "quote or pass the value as a parameter"
                )
        gaps: list[str] = []
        covered = 0
        for token in tokens:
            gaps.append(self.text[covered : token.start])
            covered = max(covered, token.end + 1)
        gaps.append(self.text[covered:])
        for gap in gaps:
            i = 0
            while i < len(gap):
                if gap.startswith("--", i):
                    if self.dialect is None and gap[i + 2 : i + 3].strip():
                        raise Refused(
                            "it holds '--' not followed by a space, a comment in some "
                            "databases and not in MySQL; pass the dialect"
                        )
                    newline = gap.find("\n", i)
                    i = len(gap) if newline < 0 else newline + 1
                elif gap.startswith("/*", i):
                    close = gap.find("*/", i + 2)
                    inner = gap[i + 2 : len(gap) if close < 0 else close]
                    if inner.startswith("!"):
                        raise Refused(
                            "it holds a MySQL executable comment (/*! ... */), which MySQL "
                            "runs but the parser reads as a comment"
                        )
                    if self.dialect is None and "/*" in inner:
                        raise Refused(
                            "it holds a nested comment, whose extent differs between "
                            "databases; pass the dialect"
                        )
                    i = len(gap) if close < 0 else close + 2
                else:
                    i += 1

    def _substitute(self, tokens: Sequence[Token]) -> str:
        """Replace each placeholder with a neutral name sqlglot parses in any dialect.

        Placeholders are looked for only in code (never in strings, quoted names or comments),
        then restored in the normalized text, so they are kept exactly as written.
        """
        sql = self.text
        code = bytearray(len(sql))
        for token in tokens:
            if not is_opaque(token, sql):
                code[token.start : token.end + 1] = b"\x01" * (token.end + 1 - token.start)
        pieces: list[str] = []
        last = 0
        for match in PLACEHOLDER_RE[self.dialect].finditer(sql):
            if match.groupdict().get("pct"):
                continue  # %% is a literal % in pyformat, not a placeholder
            if 0 in code[match.start() : match.end()]:
                continue
            positional = bool(match.groupdict().get("pyseq") or match.groupdict().get("qmark"))
            self.placeholders.append(Placeholder(match.group(0), positional))
            pieces.append(sql[last : match.start()])
            pieces.append(f" {self.prefix}{len(self.placeholders) - 1} ")
            last = match.end()
        pieces.append(sql[last:])
        return "".join(pieces)

    def _parse(self, text: str) -> exp.Expr:
        try:
            statements = parse_all(text, self.dialect)
        except Exception as exc:  # ParseError, TokenError, or a parser bug: never guess
            raise Refused(f"it cannot be parsed ({first_line(exc)})") from None
        if not statements:
            raise Refused("it is empty")
        if len(statements) > 1:
            raise Refused(
                f"it holds {len(statements)} statements; analyse one statement at a time"
            )
        return statements[0]

    def _check_placeholders(self, tree: exp.Expr) -> None:
        from sqlglot import exp

        if not self.placeholders:
            return
        for ident in tree.find_all(exp.Identifier):
            if not str(ident.this).startswith(self.prefix):
                continue
            parent = ident.parent
            if (
                not isinstance(parent, exp.Column)
                or ident.arg_key != "this"
                or parent.args.get("table") is not None
            ):
                raise Refused("a parameter placeholder stands where a name is expected")

    # ---- RENAME TABLE a TO b, c TO d (MySQL), which sqlglot keeps as an opaque command

    def _rename(self, tokens: Sequence[Token]) -> Statement:
        import sqlglot
        from sqlglot import exp

        groups: list[list[Token]] = [[]]
        if tokens[0].text.upper() != "TABLE":
            raise Refused("RENAME statements other than RENAME TABLE are not analysed")
        for token in tokens[1:]:
            if token.token_type.name == "SEMICOLON":
                continue
            if token.token_type.name == "COMMA":
                groups.append([])
            else:
                groups[-1].append(token)
        names: list[str] = []
        pairs: list[str] = []
        for group in groups:
            split = [i for i, t in enumerate(group) if t.text.upper() == "TO"]
            if len(split) != 1 or split[0] in (0, len(group) - 1):
                raise Refused("RENAME TABLE must list pairs of names: old TO new")
            pair: list[str] = []
            for side in (group[: split[0]], group[split[0] + 1 :]):
                text = self.text[side[0].start : side[-1].end + 1]
                try:
                    table = sqlglot.parse_one(text, read=self.dialect, into=exp.Table)
                except Exception as exc:
                    raise Refused(f"RENAME TABLE names {text!r} ({first_line(exc)})") from None
                if not isinstance(table, exp.Table):
                    raise Refused(f"RENAME TABLE names {text!r}, which is not a table")
                names.append(self.written_name(table))
                pair.append(table.sql(dialect=self.dialect))
            pairs.append(" TO ".join(pair))
        return Statement(
            kind=StatementKind.DDL,
            reads=frozenset(),
            writes=frozenset(names),
            normalized="RENAME TABLE " + ", ".join(pairs),
        )

    # ---- normalized text

    def _normalize(self, tree: exp.Expr) -> str:
        from sqlglot import exp
        from sqlglot.errors import ErrorLevel

        # PostgreSQL's dollar-quoted $$text$$ is generated as 'text': make the tree say so, so
        # the round trip below compares like with like (it still checks the quoting).
        for raw in list(tree.find_all(exp.RawString)):
            raw.replace(exp.Literal.string(raw.this))
        try:
            text = tree.sql(
                dialect=self.dialect, comments=False, unsupported_level=ErrorLevel.RAISE
            )
            # Round trip: the text must parse back to the same tree, so two statements that
            # mean different things never share a normalized text through a generator slip.
            same = parse_all(text, self.dialect) == [tree]
        except Exception as exc:
            raise Refused(f"it cannot be normalized ({first_line(exc)})") from None
        if not same:
            raise Refused("its normalized text would not parse back to the same statement")
        if self.replace_into:
            if not text.startswith("INSERT "):
                raise Refused("it cannot be normalized as REPLACE INTO")
            text = "REPLACE " + text[len("INSERT ") :]
        if not self.placeholders:
            return text
        sentinel = re.compile(re.escape(self.prefix) + r"(\d+)\b")
        order = [int(m.group(1)) for m in sentinel.finditer(text)]
        if sorted(order) != list(range(len(self.placeholders))):
            raise Refused("normalizing it would drop or repeat a parameter placeholder")
        positional = [i for i in order if self.placeholders[i].positional]
        # A positional placeholder's meaning is its rank. If generation moved one (MySQL's
        # LIMIT %s, %s becomes LIMIT %s OFFSET %s), each positional placeholder is followed
        # by its original rank in a comment, so the text stays unambiguous with the params.
        ranks = {i: r for r, i in enumerate(sorted(positional), start=1)}
        moved = positional != sorted(positional)

        def restore(match: re.Match[str]) -> str:
            index = int(match.group(1))
            placeholder = self.placeholders[index]
            if moved and placeholder.positional:
                return f"{placeholder.text} /* {ranks[index]} */"
            return placeholder.text

        return sentinel.sub(restore, text)
