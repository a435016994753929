"""SQLAlchemy 2 integration: transaction-aware invalidation with no memo_redis code in the
user's transactions, and Core ``Select`` statements cached under every table they read.

``install(Session, engine)`` registers event listeners (the ``sqlalchemy`` extra):

* **Session** (a ``sessionmaker``, a ``scoped_session`` or a ``Session`` subclass): a *scope*
  (:mod:`memo_redis.transaction_state`) opens when a session's transaction first reaches the
  database (``after_begin``) and closes when its root transaction ends (``after_commit``,
  ``after_rollback``, ``after_soft_rollback``, and ``after_transaction_end`` for ``close()``
  without a commit), exactly once per transaction. Every invalidation the thread issues inside
  is applied at once and again after the commit, and the thread's cached calls of keys it
  invalidated bypass the cache: the rules of :func:`memo_redis.sql.transaction`.
* With ``invalidate_writes`` (default), ``after_flush`` invalidates ``sql:<table>:*`` for the
  tables the flush wrote: the mapped tables of every new, dirty and deleted instance, plus the
  association tables and one-to-many targets of relationships that changed; and
  ``do_orm_execute`` runs ``session.execute(insert/update/delete(...))``, then invalidates its
  table.
* **Engine**: Core ``insert``/``update``/``delete`` constructs invalidate their table after they
  run (``after_execute``), and each connection's transaction is a scope too: opened on
  ``begin``, closed on ``rollback``, and after a commit when the connection begins again or goes
  back to the pool (``checkin``; at once for ``with engine.begin():``), since SQLAlchemy has no
  event after a Core commit. Writes through ``text()`` or ``exec_driver_sql`` are not seen.

:func:`cached_select` caches a Core ``Select`` by its compiled SQL and bound parameters, under
every table it reads (:func:`memo_redis.sql.read_tables`).

A session or connection must begin and end its transaction in one thread (or asyncio task), as
SQLAlchemy already requires; a session that is never closed keeps its thread's scope open.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import RelationshipDirection, Session, scoped_session, sessionmaker
from sqlalchemy.sql import TableClause
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.expression import GenerativeSelect
from sqlalchemy.sql.util import find_tables

from .context import get_default_cache
from .sql.queries import read_tables, table_pattern_of
from .sql.transactions import reapply
from .transaction_state import close_scope, current_scope, open_scope
from .ttl import CATEGORY_DEFAULT, TTL

if TYPE_CHECKING:
    import contextvars

    from sqlalchemy.engine import Result
    from sqlalchemy.orm import ORMExecuteState, SessionTransaction
    from sqlalchemy.pool import ConnectionPoolEntry
    from sqlalchemy.sql import ClauseElement
    from sqlalchemy.sql.expression import Executable

    from .facade import RedisCaching
    from .transaction_state import TransactionScope

__all__ = ["cached_select", "install", "tables_of", "uninstall"]

log = logging.getLogger("memo_redis")

SCOPE_KEY = "memo_redis.scope"
"""The key of a session's open scope in ``Session.info`` and of a connection's in
``Connection.info`` (the pooled DBAPI connection's info)."""


@dataclass
class Options:
    """What one ``install()`` asked for (updated in place by a second call)."""

    cache: RedisCaching | None
    invalidate_writes: bool

    def target(self) -> RedisCaching:
        """The cache invalidations go to: the given one, else the default cache, now."""
        return self.cache if self.cache is not None else get_default_cache()


@dataclass
class OpenScope:
    """A scope opened for one session's root transaction or one connection's transaction."""

    scope: TransactionScope
    token: contextvars.Token[TransactionScope | None] | None
    root: SessionTransaction | None = None  # the session's root transaction
    committed: bool = False  # a connection's commit was issued: close at the next use

    def finish(self) -> None:
        """Close the scope and apply its invalidations again (the outermost scope only)."""
        try:
            invalidations = close_scope(self.scope, self.token)
        except ValueError:  # the token was set in another thread or task's context
            log.warning("memo_redis: a SQLAlchemy transaction ended in another thread than it "
                        "began; its invalidations are applied again anyway")
            invalidations = list(self.scope.invalidations)
        reapply(invalidations)


_sessions: weakref.WeakKeyDictionary[type[Session], Options] = weakref.WeakKeyDictionary()
_engines: weakref.WeakKeyDictionary[Engine, Options] = weakref.WeakKeyDictionary()
_listeners: weakref.WeakKeyDictionary[object, list[tuple[str, Callable[..., object]]]] = (
    weakref.WeakKeyDictionary()
)


# --- tables and invalidation ---------------------------------------------------------------


def tables_of(*clauses: ClauseElement) -> set[str]:
    """The names (``schema.name`` when a schema is set) of every table in ``clauses``: joins,
    subqueries, CTEs and aliases included."""
    return {table.fullname for clause in clauses for table in find_tables(clause)
            if isinstance(table, TableClause)}


def written_tables(statement: object) -> set[str]:
    """The tables a Core or ORM ``insert``/``update``/``delete`` writes (also inside
    ``select(...).from_statement(dml)``); empty for anything else."""
    dml = statement if isinstance(statement, UpdateBase) else getattr(statement, "element", None)
    table = getattr(dml, "table", None) if isinstance(dml, UpdateBase) else None
    return tables_of(table) if table is not None else set()


def invalidate_tables(cache: RedisCaching, tables: Iterable[str]) -> None:
    """``cache.invalidate(table_pattern_of(t))`` for each table, skipping a pattern the open
    scope already recorded on this cache (it is applied again after the commit anyway, and this
    thread's reads of it already bypass the cache)."""
    scope = current_scope()
    for table in sorted(set(tables)):
        pattern = table_pattern_of(table)
        if scope is not None and any(c is cache and kind == "pattern" and target == pattern
                                     for c, kind, target in scope.invalidations):
            continue
        cache.invalidate(pattern)


def flushed_tables(session: Session) -> set[str]:
    """The tables a flush of ``session`` writes (read in ``after_flush``, whose new, dirty and
    deleted collections still show the state before the flush)."""
    clauses: list[ClauseElement] = []
    deleted = set(map(id, session.deleted))
    for instance in [*session.new, *session.dirty, *session.deleted]:
        state = inspect(instance)
        mapper = state.mapper
        clauses.extend(mapper.tables)
        for relationship in mapper.relationships:
            if relationship.viewonly:
                continue
            changed = state.attrs[relationship.key].history.has_changes()
            if not changed and id(instance) not in deleted:
                continue
            if relationship.secondary is not None:
                clauses.append(relationship.secondary)
            elif relationship.direction is RelationshipDirection.ONETOMANY:
                clauses.extend(relationship.mapper.tables)  # the children's foreign keys
    return tables_of(*clauses)


# --- session events ------------------------------------------------------------------------


def _session_began(session: Session, transaction: SessionTransaction, _conn: Any) -> None:
    if SCOPE_KEY in session.info:
        return
    root = transaction
    while root.parent is not None:
        root = root.parent
    scope, token = open_scope()
    session.info[SCOPE_KEY] = OpenScope(scope, token, root)


def _session_ended(session: Session) -> None:
    opened = session.info.pop(SCOPE_KEY, None)
    if isinstance(opened, OpenScope):
        opened.finish()


def _root_done(session: Session) -> None:
    """``after_commit`` / ``after_rollback``: also fired for savepoints; act on the root only."""
    opened = session.info.get(SCOPE_KEY)
    if isinstance(opened, OpenScope) and opened.root is not None and not opened.root.is_active:
        _session_ended(session)


def _soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        _session_ended(session)


def _transaction_end(session: Session, transaction: SessionTransaction) -> None:
    opened = session.info.get(SCOPE_KEY)
    if isinstance(opened, OpenScope) and opened.root is transaction:
        _session_ended(session)


def _session_listeners(options: Options) -> list[tuple[str, Callable[..., object]]]:
    def after_flush(session: Session, _flush_context: Any) -> None:
        if options.invalidate_writes:
            invalidate_tables(options.target(), flushed_tables(session))

    def do_orm_execute(state: ORMExecuteState) -> Result[Any] | None:
        """``session.execute(update(...))`` and friends: run, then invalidate what it wrote."""
        if not options.invalidate_writes or not (state.is_insert or state.is_update
                                                 or state.is_delete):
            return None
        tables = written_tables(state.statement)
        if not tables:
            return None
        result = state.invoke_statement()
        invalidate_tables(options.target(), tables)
        return result

    return [("after_begin", _session_began), ("after_commit", _root_done),
            ("after_rollback", _root_done), ("after_soft_rollback", _soft_rollback),
            ("after_transaction_end", _transaction_end), ("after_flush", after_flush),
            ("do_orm_execute", do_orm_execute)]


# --- engine events -------------------------------------------------------------------------


def _finish_connection(info: dict[Any, Any]) -> None:
    opened = info.pop(SCOPE_KEY, None)
    if isinstance(opened, OpenScope):
        opened.finish()


def _conn_begin(conn: Connection) -> None:
    _finish_connection(conn.info)  # a committed transaction still waiting for its next use
    scope, token = open_scope()
    conn.info[SCOPE_KEY] = OpenScope(scope, token)


def _conn_commit(conn: Connection, *_xid: Any) -> None:
    opened = conn.info.get(SCOPE_KEY)
    if isinstance(opened, OpenScope):
        opened.committed = True  # the DBAPI commit has not run yet: apply again later


def _conn_rollback(conn: Connection, *_xid: Any) -> None:
    _finish_connection(conn.info)  # nothing to publish: the old rows stay the committed ones


def _checkin(_dbapi_conn: Any, record: ConnectionPoolEntry | None) -> None:
    if record is not None:
        _finish_connection(record.info)


def _engine_listeners(options: Options) -> list[tuple[str, Callable[..., object]]]:
    def after_execute(conn: Connection, clause: Any, *_rest: Any) -> None:
        if options.invalidate_writes:
            tables = written_tables(clause)
            if tables:
                invalidate_tables(options.target(), tables)

    return [("begin", _conn_begin), ("commit", _conn_commit),
            ("commit_twophase", _conn_commit), ("rollback", _conn_rollback),
            ("rollback_twophase", _conn_rollback), ("checkin", _checkin),
            ("after_execute", after_execute)]


# --- install -------------------------------------------------------------------------------


def _session_class(session: object) -> type[Session]:
    if isinstance(session, scoped_session):
        session = session.session_factory
    if isinstance(session, sessionmaker):
        cls: type[Session] = session.class_
        return cls
    if isinstance(session, type) and issubclass(session, Session):
        return session
    raise TypeError(
        "install() takes a sqlalchemy.orm.sessionmaker, scoped_session or Session class, got "
        f"{_name(session)}"
    )


def _name(value: object) -> str:
    kind = value if isinstance(value, type) else type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _register(target: object, registry: Any, options: Options,
              listeners: Callable[[Options], list[tuple[str, Callable[..., object]]]]) -> None:
    known: Options | None = registry.get(target)
    if known is not None:  # installed before: new options, same listeners
        known.cache, known.invalidate_writes = options.cache, options.invalidate_writes
        return
    registry[target] = options
    pairs = listeners(options)
    for name, fn in pairs:
        event.listen(target, name, fn)
    _listeners[target] = pairs


def install(session: sessionmaker[Any] | scoped_session[Any] | type[Session] | None,
            engine: Engine | None = None, *, cache: RedisCaching | None = None,
            invalidate_writes: bool = True) -> None:
    """Make SQLAlchemy transactions follow the rules of :func:`memo_redis.sql.transaction`.

    ``session``: a ``sessionmaker``, a ``scoped_session`` or a ``Session`` subclass (None for
    the engine only). ``engine``: also watch Core statements and connection transactions on
    this ``Engine``. ``cache``: where write invalidations go (None: the default cache when they
    happen). ``invalidate_writes``: invalidate ``sql:<table>:*`` for the tables a flush or a
    Core ``insert``/``update``/``delete`` writes. Calling it again for the same target only
    updates these options. A wrong type is a ``TypeError`` naming it.

    >>> install(sessionmaker(engine), engine)    # doctest: +SKIP
    """
    targets: list[tuple[object, Any, Callable[..., Any]]] = []
    if session is not None:
        targets.append((_session_class(session), _sessions, _session_listeners))
    if engine is not None:
        if not isinstance(engine, Engine):
            raise TypeError(f"install() takes a sqlalchemy.engine.Engine as engine, got "
                            f"{_name(engine)}")
        targets.append((engine, _engines, _engine_listeners))
    if not targets:
        raise TypeError("install() needs a session factory, an engine or both")
    for target, registry, listeners in targets:
        _register(target, registry, Options(cache, invalidate_writes), listeners)


def uninstall(session: sessionmaker[Any] | scoped_session[Any] | type[Session] | None,
              engine: Engine | None = None) -> None:
    """Remove what :func:`install` registered on ``session`` and ``engine`` (scopes already open
    still close when their transactions end)."""
    for target in ([_session_class(session)] if session is not None else []) + (
            [engine] if engine is not None else []):
        for name, fn in _listeners.pop(target, []):
            event.remove(target, name, fn)
        registry: Any = _engines if isinstance(target, Engine) else _sessions
        registry.pop(target, None)


# --- cached selects ------------------------------------------------------------------------


def cached_select(bind: Session | Connection | Engine, statement: GenerativeSelect,
                  *, cache: RedisCaching | None = None, ttl: TTL = CATEGORY_DEFAULT
                  ) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` (plain tuples), cached under every table it reads.

    The key covers the dialect, the SQL compiled for ``bind``'s dialect (``IN`` lists
    expanded) and its bound parameters; a write to any table the statement reads (joins,
    subqueries and CTEs included) makes it a miss. ``bind``: a ``Session`` (runs on its
    connection, so inside its transaction), a ``Connection`` or an ``Engine``. Transaction-aware
    like every read: inside a transaction that invalidated one of its tables, it runs uncached.
    Select columns rather than ORM entities: the rows are stored, not objects.
    """
    if not isinstance(statement, GenerativeSelect):
        raise TypeError(f"cached_select() takes a select() or a union of them, got "
                        f"{_name(statement)}")
    if isinstance(bind, Session):
        dialect = bind.get_bind(clause=statement).dialect
    elif isinstance(bind, (Connection, Engine)):
        dialect = bind.dialect
    else:
        raise TypeError(f"cached_select() takes a Session, Connection or Engine, got {_name(bind)}")
    tables = tables_of(statement)
    if not tables:
        raise ValueError("cached_select() needs a statement reading at least one Table")
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    identity = ("sqlalchemy", dialect.name, str(compiled), tuple(sorted(compiled.params.items())))

    runnable = cast("Executable", statement)

    def rows() -> list[tuple[Any, ...]]:
        if isinstance(bind, Session):
            result = bind.connection(bind_arguments={"clause": statement}).execute(runnable)
            return [tuple(row) for row in result]
        if isinstance(bind, Connection):
            return [tuple(row) for row in bind.execute(runnable)]
        with bind.connect() as conn:
            return [tuple(row) for row in conn.execute(runnable)]

    return read_tables(cache if cache is not None else get_default_cache(), tables, identity,
                       rows, ttl=ttl)
