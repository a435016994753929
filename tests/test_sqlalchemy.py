"""memo_redis.sqlalchemy: ORM sessions and Core transactions follow transaction()'s rules with no
memo_redis call inside them, on SQLite (WAL) and PostgreSQL, with readers in other threads and
processes filling the cache during the window between the flush and the commit."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, registry, relationship, scoped_session, sessionmaker

import memo_redis
from memo_redis import RedisCaching, cached
from memo_redis import sqlalchemy as memo_sa
from memo_redis.embedded import EmbeddedServer
from memo_redis.sql import table_pattern_of
from memo_redis.transaction_state import current_scope

TRIALS = 200
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    """The PostgreSQL URL: ``MEMO_REDIS_PG_DSN`` (a plain ``postgresql://`` DSN) or the default."""
    dsn = os.environ.get("MEMO_REDIS_PG_DSN")
    if not dsn:
        return PG_URL
    scheme, _, rest = dsn.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else dsn


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
    return create_engine(url, connect_args={"connect_timeout": 3})


def available(url: str) -> str:
    """``url`` when its database answers; skips (fails in CI) when unreachable."""
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any driver or socket error means "not reachable"
        reason = f"postgres not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} -- the SQLAlchemy tests must run in CI")
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


# --- the cached read, as an application would write it ----------------------------------------


@cached(prefix="sql:{table}", ttl=60, ignore=("bind",))
def read_email(bind: Session | Connection | Engine, table: str, pk: int) -> str:
    """The committed email (or, inside the writer's own transaction, its uncommitted one)."""
    sql = text(f"SELECT email FROM {table} WHERE id = :pk")
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return str(conn.execute(sql, {"pk": pk}).scalar_one())
    return str(bind.execute(sql, {"pk": pk}).scalar_one())


def _reader_process(redis_url: str, db_url: str, table: str, pipe: Any) -> None:
    """A reader in another process (its own engine, nothing installed): reads through the
    cache whenever asked."""
    cache = RedisCaching(redis_url)
    memo_redis.set_default_cache(cache)
    engine = make_engine(db_url)
    while (message := pipe.recv()) is not None:
        pipe.send(read_email(engine, table, message))
    engine.dispose()
    cache.close()


class Readers:
    """A reader thread on the application's engine and a reader process with its own."""

    def __init__(self, redis_url: str, db: Database) -> None:
        self.engine = db.engine
        self.table = db.table
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_reader_process,
                                       args=(redis_url, db.url, db.table, child), daemon=True)
        self.process.start()

    def read_in_thread(self, pk: int) -> str:
        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(
            read_email(self.engine, self.table, pk)))
        thread.start()
        thread.join(30)
        return result[0]

    def read_in_process(self, pk: int) -> str:
        self.pipe.send(pk)
        assert self.pipe.poll(30), "the reader process did not answer"
        answer: str = self.pipe.recv()
        return answer

    def close(self) -> None:
        self.pipe.send(None)
        self.process.join(30)


# --- databases ----------------------------------------------------------------------------------


@dataclass
class Database:
    """A table ``id, email`` with row 1, its ORM class, an engine and a session factory."""

    url: str
    table: str
    accounts: Table
    account: type[Any]
    engine: Engine
    sessions: sessionmaker[Session]


def _mapped(table: Table) -> type[Any]:
    class Account:
        id: int
        email: str

    registry().map_imperatively(Account, table)
    return Account


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.db)])
def db(request: pytest.FixtureRequest, tmp_path: Path, cache: RedisCaching) -> Iterator[Database]:
    """A fresh table on SQLite (a WAL file) or PostgreSQL, dropped afterwards; ``cache`` is the
    default cache for the test."""
    url = f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else available(pg_url())
    engine = make_engine(url)
    if request.param == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    name = f"memo_sa_{uuid.uuid4().hex[:8]}"
    accounts = Table(name, MetaData(), Column("id", Integer, primary_key=True),
                     Column("email", String(64)))
    accounts.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(accounts).values(id=1, email="v-start"))
    memo_redis.set_default_cache(cache)
    try:
        yield Database(url, name, accounts, _mapped(accounts), engine, sessionmaker(engine))
    finally:
        memo_redis.set_default_cache(None)
        accounts.drop(engine)
        engine.dispose()


# --- the harness --------------------------------------------------------------------------------

Writer = Callable[[str, Callable[[Any], None]], None]
"""``write(new, inside)``: one transaction writing ``new`` into row 1, calling ``inside(bind)``
after the write and before the commit (``inside`` raises on the trials that roll back)."""


def orm_writer(db: Database) -> Writer:
    """The application's ORM transaction: no memo_redis call inside."""
    def write(new: str, inside: Callable[[Any], None]) -> None:
        with db.sessions() as session, session.begin():
            session.get(db.account, 1).email = new
            session.flush()
            inside(session)
    return write


def core_writer(db: Database) -> Writer:
    """A Core transaction on the engine: no memo_redis call inside."""
    def write(new: str, inside: Callable[[Any], None]) -> None:
        with db.engine.begin() as conn:
            conn.execute(update(db.accounts).where(db.accounts.c.id == 1).values(email=new))
            inside(conn)
    return write


@dataclass
class Outcome:
    stale: int = 0  # reads after the commit or rollback that did not return the committed row
    leaked: int = 0  # reads by other threads/processes inside the window that saw the new row
    blind: int = 0  # the writer's reads inside its transaction that missed its own write
    scopes: int = 0  # trials after which the main thread still had an open scope


def trials(db: Database, server: EmbeddedServer, write: Writer) -> Outcome:
    """TRIALS write/read/commit rounds; every 5th rolls back."""
    readers = Readers(server.url, db)
    outcome = Outcome()
    committed = "v-start"
    try:
        for trial in range(TRIALS):
            new = f"v{trial}"
            rollback = trial % 5 == 4

            def inside(bind: Any, new: str = new, rollback: bool = rollback) -> None:
                outcome.blind += read_email(bind, db.table, 1) != new
                # Readers elsewhere miss and fill the cache with the committed row.
                seen = {readers.read_in_thread(1), readers.read_in_process(1)}
                outcome.leaked += new in seen
                if rollback:
                    raise RuntimeError("roll back")

            with contextlib.suppress(RuntimeError):
                write(new, inside)
            if not rollback:
                committed = new
            outcome.scopes += current_scope() is not None
            after = [read_email(db.engine, db.table, 1), readers.read_in_thread(1),
                     readers.read_in_process(1)]
            outcome.stale += sum(value != committed for value in after)
    finally:
        readers.close()
    return outcome


def test_orm_sessions_keep_invalidations_across_the_commit(db: Database,
                                                          server: EmbeddedServer) -> None:
    """200 ORM trials (flush, commit; every 5th rolls back): 0 stale reads after the commit, the
    writer reads its own writes, no reader sees a rolled-back value, no scope left open."""
    memo_sa.install(db.sessions, db.engine)
    outcome = trials(db, server, orm_writer(db))
    assert outcome == Outcome(0, 0, 0, 0)


def test_orm_sessions_without_the_engine(db: Database, server: EmbeddedServer) -> None:
    """Installed on the session factory only, the flush events alone keep the same rules."""
    memo_sa.install(db.sessions)
    outcome = trials(db, server, orm_writer(db))
    assert outcome == Outcome(0, 0, 0, 0)


def test_core_transactions_keep_invalidations_across_the_commit(db: Database,
                                                                server: EmbeddedServer) -> None:
    """200 Core trials in ``engine.begin()``: the same four counts are 0."""
    memo_sa.install(None, db.engine)
    outcome = trials(db, server, core_writer(db))
    assert outcome == Outcome(0, 0, 0, 0)


def test_without_install_the_old_row_is_served_after_the_commit(
    db: Database, server: EmbeddedServer, cache: RedisCaching,
) -> None:
    """The race install() closes is real: invalidating right after the flush, as an application
    without it would, leaves rows in the cache that the transaction's end made stale."""
    plain = orm_writer(db)

    def write(new: str, inside: Callable[[Any], None]) -> None:
        def invalidate_then(bind: Any) -> None:
            cache.invalidate(table_pattern_of(db.table))
            inside(bind)
        plain(new, invalidate_then)

    assert trials(db, server, write).stale > 0


# --- what each event does -----------------------------------------------------------------------


def test_core_insert_update_delete_invalidate(db: Database) -> None:
    """Core insert, update and delete in ``engine.begin()`` each invalidate their table."""
    memo_sa.install(None, db.engine)

    @cached(prefix="sql:{table}", ttl=60, ignore=("engine",))
    def count(engine: Engine, table: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    accounts = db.accounts
    assert count(db.engine, db.table) == 1
    with db.engine.begin() as conn:
        conn.execute(insert(accounts).values(id=2, email="b"))
    assert count(db.engine, db.table) == 2
    assert read_email(db.engine, db.table, 2) == "b"
    with db.engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == 2).values(email="c"))
    assert read_email(db.engine, db.table, 2) == "c"
    with db.engine.begin() as conn:
        conn.execute(delete(accounts).where(accounts.c.id == 2))
    assert count(db.engine, db.table) == 1
    assert current_scope() is None


def test_session_execute_of_dml_invalidates_without_the_engine(db: Database) -> None:
    """With the session factory installed alone, ``session.execute`` of an ORM or Core
    insert/update/delete invalidates its table, applied again after the commit."""
    memo_sa.install(db.sessions)
    assert read_email(db.engine, db.table, 1) == "v-start"
    with db.sessions() as session, session.begin():
        session.execute(update(db.account).where(db.account.id == 1).values(email="orm"))
        assert read_email(session, db.table, 1) == "orm"  # own write, bypassing the cache
        assert read_email(db.engine, db.table, 1) == "v-start"  # another connection fills
    assert read_email(db.engine, db.table, 1) == "orm"
    with db.sessions() as session, session.begin():
        session.execute(insert(db.accounts).values(id=2, email="core"))
    assert read_email(db.engine, db.table, 2) == "core"
    with db.sessions() as session, session.begin():
        session.execute(delete(db.accounts).where(db.accounts.c.id == 2))
        session.execute(update(db.accounts).where(db.accounts.c.id == 1).values(email="last"))
    assert read_email(db.engine, db.table, 1) == "last"
    assert current_scope() is None


def test_a_flush_invalidates_the_tables_of_changed_relationships(tmp_path: Path,
                                                                 cache: RedisCaching) -> None:
    """Appending to a one-to-many collection invalidates the children's table (their foreign
    keys change) and a many-to-many change invalidates the association table."""
    metadata = MetaData()
    parents = Table("parents", metadata, Column("id", Integer, primary_key=True))
    children = Table("children", metadata, Column("id", Integer, primary_key=True),
                     Column("parent_id", ForeignKey("parents.id")))
    tags = Table("tags", metadata, Column("id", Integer, primary_key=True))
    links = Table("parent_tags", metadata, Column("parent_id", ForeignKey("parents.id")),
                  Column("tag_id", ForeignKey("tags.id")))

    class Parent:
        children: list[Any]
        tags: list[Any]

    class Child:
        def __init__(self, id: int) -> None:
            self.id = id

    class Tag(Child):
        pass

    mapper = registry()
    mapper.map_imperatively(Child, children)
    mapper.map_imperatively(Tag, tags)
    mapper.map_imperatively(Parent, parents, properties={
        "children": relationship(Child), "tags": relationship(Tag, secondary=links)})
    engine = make_engine(f"sqlite:///{tmp_path / 'rel.db'}")
    metadata.create_all(engine)
    sessions = sessionmaker(engine)
    memo_sa.install(sessions, cache=cache)
    with sessions() as session, session.begin():
        session.add_all([Parent(), Child(1), Tag(1)])
    flushed: list[set[str]] = []
    with sessions() as session, session.begin():
        parent = session.get(Parent, 1)
        parent.children.append(session.get(Child, 1))
        session.flush()
        scope = current_scope()
        assert scope is not None
        flushed.append({target for _, _, target in scope.invalidations})
        parent.tags.append(session.get(Tag, 1))
        session.flush()
        flushed.append({target for _, _, target in scope.invalidations} - flushed[0])
    assert flushed == [{table_pattern_of("parents"), table_pattern_of("children")},
                       {table_pattern_of("parent_tags")}]
    engine.dispose()


def test_session_close_without_commit_closes_the_scope(db: Database) -> None:
    """A flushed session closed without a commit rolls back, closes its scope once, and the
    cache still serves the committed row."""
    memo_sa.install(db.sessions, db.engine)
    assert read_email(db.engine, db.table, 1) == "v-start"
    session = db.sessions()
    session.get(db.account, 1).email = "never"
    session.flush()
    assert current_scope() is not None
    assert read_email(session, db.table, 1) == "never"  # own write, bypassing the cache
    session.close()
    assert current_scope() is None
    assert read_email(db.engine, db.table, 1) == "v-start"


def test_savepoint_rollback_keeps_the_transaction_scope(db: Database) -> None:
    """Rolling back a savepoint (``begin_nested``) leaves the root transaction's scope open;
    its commit closes it and publishes the write made outside the savepoint."""
    memo_sa.install(db.sessions, db.engine)
    with db.sessions() as session, session.begin():
        session.get(db.account, 1).email = "kept"
        session.flush()
        with pytest.raises(RuntimeError), session.begin_nested():
            session.get(db.account, 1).email = "dropped"
            session.flush()
            raise RuntimeError("roll back the savepoint")
        assert current_scope() is not None
        assert read_email(session, db.table, 1) == "kept"
    assert current_scope() is None
    assert read_email(db.engine, db.table, 1) == "kept"


def test_a_failed_flush_rolls_back_and_closes_the_scope(db: Database) -> None:
    """A flush that fails (duplicate key) rolls the transaction back: the scope closes with it."""
    memo_sa.install(db.sessions, db.engine)
    with db.engine.begin() as conn:
        conn.execute(insert(db.accounts).values(id=2, email="taken"))
    with db.sessions() as session:
        session.get(db.account, 1).email = "changed"
        session.flush()
        session.add(db.account(id=2, email="duplicate"))
        with pytest.raises(IntegrityError):
            session.flush()
        assert current_scope() is None
        session.rollback()
    assert current_scope() is None
    assert read_email(db.engine, db.table, 1) == "v-start"


def test_install_twice_updates_the_options(db: Database) -> None:
    """A second install() of the same targets changes the options, not the number of listeners."""
    memo_sa.install(db.sessions, db.engine)
    memo_sa.install(db.sessions, db.engine, invalidate_writes=False)
    assert read_email(db.engine, db.table, 1) == "v-start"
    with db.sessions() as session, session.begin():
        session.get(db.account, 1).email = "silent"
    assert read_email(db.engine, db.table, 1) == "v-start"  # nothing invalidated any more
    memo_sa.install(db.sessions, db.engine)
    with db.sessions() as session, session.begin():
        session.get(db.account, 1).email = "loud"
    assert read_email(db.engine, db.table, 1) == "loud"
    memo_sa.uninstall(db.sessions, db.engine)
    with db.sessions() as session, session.begin():
        session.get(db.account, 1).email = "unseen"
    assert read_email(db.engine, db.table, 1) == "loud"


def test_cached_select_is_guarded_by_a_joined_table(db: Database, cache: RedisCaching) -> None:
    """cached_select hits until a write to a joined table (not the first FROM) makes it a miss."""
    memo_sa.install(db.sessions, db.engine)
    orders = Table(f"{db.table}_orders", db.accounts.metadata,
                   Column("id", Integer, primary_key=True),
                   Column("account_id", ForeignKey(db.accounts.c.id)),
                   Column("total", Integer))
    orders.create(db.engine)
    executed: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: executed.append(sql))
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(orders).values(id=1, account_id=1, total=5))
        statement = (select(db.accounts.c.email, func.sum(orders.c.total))
                     .select_from(db.accounts).join(orders)
                     .where(db.accounts.c.id.in_([1, 2])).group_by(db.accounts.c.email))
        executed.clear()
        assert memo_sa.cached_select(db.engine, statement) == [("v-start", 5)]
        assert memo_sa.cached_select(db.engine, statement) == [("v-start", 5)]
        with db.sessions() as session:
            assert memo_sa.cached_select(session, statement, cache=cache) == [("v-start", 5)]
        assert len(executed) == 1  # one miss, then hits
        other = statement.where(db.accounts.c.id != 3)  # other SQL: its own entry
        assert memo_sa.cached_select(db.engine, other) == [("v-start", 5)]
        assert len(executed) == 2
        with db.engine.begin() as conn:
            conn.execute(insert(orders).values(id=2, account_id=1, total=7))
        assert memo_sa.cached_select(db.engine, statement) == [("v-start", 12)]
        assert len(executed) == 4  # the insert and the miss
    finally:
        orders.drop(db.engine)


@pytest.mark.parametrize("kind", ["scoped_session", "Session subclass"])
def test_install_takes_scoped_sessions_and_session_classes(kind: str, tmp_path: Path,
                                                           cache: RedisCaching) -> None:
    """install() also takes a scoped_session (its factory) and a Session subclass."""
    engine = make_engine(f"sqlite:///{tmp_path / 'kinds.db'}")
    table = Table("things", MetaData(), Column("id", Integer, primary_key=True))
    table.create(engine)
    thing = _mapped(table)
    sessions: Any
    if kind == "scoped_session":
        sessions = scoped_session(sessionmaker(engine))
        memo_sa.install(sessions, cache=cache)
    else:
        class AppSession(Session):
            pass

        memo_sa.install(AppSession, cache=cache)
        sessions = sessionmaker(engine, class_=AppSession)
    with sessions() as session, session.begin():
        session.add(thing(id=1))
        session.flush()
        scope = current_scope()
        assert scope is not None
        assert [(c, target) for c, _, target in scope.invalidations] == [
            (cache, table_pattern_of("things"))]
    assert current_scope() is None
    if kind == "scoped_session":
        sessions.remove()
    engine.dispose()


def test_wrong_types_are_type_errors(tmp_path: Path) -> None:
    """install() and cached_select() name the type they were given instead of the right one."""
    with pytest.raises(TypeError, match=r"builtins\.object"):
        memo_sa.install(object())  # type: ignore[arg-type]
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TypeError, match=r"builtins\.str"):
        memo_sa.install(sessionmaker(engine), "sqlite://")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a session factory"):
        memo_sa.install(None)
    with pytest.raises(TypeError, match=r"builtins\.str"):
        memo_sa.cached_select(engine, "SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"builtins\.int"):
        memo_sa.cached_select(3, select(text("1")))  # type: ignore[arg-type]
    engine.dispose()
