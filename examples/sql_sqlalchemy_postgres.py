"""The cat feeder with SQLAlchemy 2 ORM sessions on PostgreSQL, cached in Redis.

    pip install "memo_redis[sqlalchemy,sql]"
    MEMO_REDIS_PG_DSN=postgresql://postgres@127.0.0.1:5432/test \
        python examples/sql_sqlalchemy_postgres.py

One call, ``memo_redis.sqlalchemy.install(Sessions, engine)``, and the application's sessions
contain no memo_redis code: a flush invalidates ``sql:<table>:*`` for the tables it wrote, the
invalidation is applied again after the commit (a reader that cached the old row meanwhile is
undone), and the writer's own cached reads inside its transaction see its writes. Also shows
``cached_select``: a Core ``Select`` over a join, cached under every table it reads.

Creates its own tables (``memo_users_<random>`` and so on, so concurrent runs never collide),
fills them with 50,000 feeding events, and drops them at the end. Redis comes from REDIS_URL /
REDIS_SOCKET_PATH / REDIS_HOST when set, else from a private embedded server.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from typing import Any

from _feeder import Tables, describe_counts, fill, median_ms, open_cache, redact_dsn, timed
from sqlalchemy import ForeignKey, String, create_engine, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from memo_redis import RedisCaching, cached
from memo_redis.sqlalchemy import cached_select, install

DSN = os.environ.get("MEMO_REDIS_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
TABLES = Tables.named("memo_", f"_{secrets.token_hex(3)}")
_GONE = object()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = TABLES.users
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(128))


class Feeder(Base):
    __tablename__ = TABLES.feeders
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(User.id))
    name: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))


class Schedule(Base):
    __tablename__ = TABLES.schedules
    id: Mapped[int] = mapped_column(primary_key=True)
    feeder_id: Mapped[int] = mapped_column(ForeignKey(Feeder.id))
    time_of_day: Mapped[str] = mapped_column(String(5))
    portion_grams: Mapped[int]


class FeedingEvent(Base):
    __tablename__ = TABLES.events
    id: Mapped[int] = mapped_column(primary_key=True)
    feeder_id: Mapped[int] = mapped_column(ForeignKey(Feeder.id))
    fed_at: Mapped[str] = mapped_column(String(19))
    portion_grams: Mapped[int]


def engine_url(dsn: str) -> str:
    """A ``postgresql://`` DSN as a SQLAlchemy URL for psycopg 3."""
    scheme, _, rest = dsn.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else dsn


engine = create_engine(engine_url(DSN), connect_args={"connect_timeout": 5})
Sessions = sessionmaker(engine)


@cached(prefix="sql:{table}", ttl=300, ignore=("session",))
def grams_of(table: str, feeder_id: int, session: Session | None = None) -> int:
    """All the food one feeder dispensed: on a connection of its own (committed rows only), or
    inside ``session``'s transaction (the key is the same either way)."""
    total = select(func.coalesce(func.sum(FeedingEvent.portion_grams), 0)).where(
        FeedingEvent.feeder_id == feeder_id)
    if session is not None:
        return int(session.scalar(total) or 0)
    with engine.connect() as conn:
        return int(conn.execute(total).scalar_one())


def feed(feeder_id: int, grams: int) -> FeedingEvent:
    return FeedingEvent(feeder_id=feeder_id, fed_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                        portion_grams=grams)


def build() -> dict[str, int]:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    by_name = {table.name: table for table in Base.metadata.sorted_tables}
    with engine.begin() as conn:
        def insert_many(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
                        ) -> None:
            values = [dict(zip(columns, row, strict=True)) for row in rows]
            conn.execute(insert(by_name[table]), values)

        return fill(insert_many, TABLES)


def flow(cache: RedisCaching) -> None:
    """Miss, hits, an ORM update with no memo_redis call, the invalidation, the fresh value."""
    table, feeder = TABLES.events, 7
    key = grams_of.cache_key(table, feeder)
    total, ms = timed(grams_of, table, feeder)
    print(f"miss:         grams_of({table!r}, {feeder}) -> {total:,} g  [database, {ms:.2f} ms]")
    for _ in range(2):
        again, ms = timed(grams_of, table, feeder)
        print(f"hit:          grams_of({table!r}, {feeder}) -> {again:,} g  [cache, {ms:.3f} ms]")
    with Sessions.begin() as session:              # the application's code: no memo_redis here
        session.add(feed(feeder, 40))
    print(f"update:       an ORM session added a 40 g FeedingEvent for feeder {feeder} and "
          "committed")
    state = "still cached (BUG)" if cache.get(key, _GONE) is not _GONE else "gone"
    print(f"invalidation: the flush invalidated sql:{table}:*, applied again after the commit; "
          f"{key} is {state}")
    fresh, ms = timed(grams_of, table, feeder)
    print(f"fresh:        grams_of({table!r}, {feeder}) -> {fresh:,} g  [database, {ms:.2f} ms]")
    if fresh != total + 40:
        raise SystemExit(f"stale total after the commit: {fresh} g, expected {total + 40} g")


def window() -> None:
    """Inside a session (flushed, not committed) a reader thread caches the committed total; the
    writer reads its own write; the commit undoes the reader's entry. A rollback leaks nothing."""
    table, feeder = TABLES.events, 1
    before = grams_of(table, feeder)
    seen: list[int] = []
    with Sessions.begin() as session:
        session.add(feed(feeder, 40))
        session.flush()                           # INSERT sent; invalidated by the flush
        reader = threading.Thread(target=lambda: seen.append(grams_of(table, feeder)))
        reader.start()
        reader.join()
        own = grams_of(table, feeder, session)    # bypasses the cache: sees its own row
    after = grams_of(table, feeder)
    print(f"transaction:  inside the session another thread read {seen[0]:,} g (the committed "
          f"total) and cached it; the writer read {own:,} g (its own write)")
    print(f"transaction:  after the commit feeder {feeder} shows {after:,} g (was {before:,} g):"
          f" {'fresh' if after == before + 40 else 'STALE'}")
    if after != before + 40 or own != before + 40 or seen != [before]:
        raise SystemExit("the cache served a total from before the commit")
    try:
        with Sessions.begin() as session:
            session.add(feed(feeder, 1000))
            session.flush()
            grams_of(table, feeder, session)      # its own uncommitted total, never cached
            grams_of(table, feeder)
            raise RuntimeError("cancel")
    except RuntimeError:
        pass
    rolled = grams_of(table, feeder)
    print(f"rollback:     a session that flushed +1,000 g then rolled back: feeder {feeder} "
          f"shows {rolled:,} g ({'unchanged' if rolled == after else 'WRONG'})")
    if rolled != after:
        raise SystemExit("a rolled-back value reached the cache")


def joined() -> None:
    """cached_select over users x feeders x events: a write to any of them makes it a miss."""
    grams = func.sum(FeedingEvent.portion_grams).label("grams")
    statement = (select(User.name, grams).join(Feeder, Feeder.user_id == User.id)
                 .join(FeedingEvent, FeedingEvent.feeder_id == Feeder.id)
                 .group_by(User.id, User.name).order_by(grams.desc(), User.id).limit(3))
    rows, miss_ms = timed(cached_select, engine, statement)
    assert cached_select(engine, statement) == rows
    hit_ms = median_ms(cached_select, engine, statement)
    print(f"select:       top owners over 3 tables -> {rows[0][0]} {rows[0][1]:,} g "
          f"[database {miss_ms:.2f} ms, then cache median {hit_ms:.3f} ms]")
    new_name = f"{rows[0][0]} (renamed)"
    with Sessions.begin() as session:
        user = session.scalars(select(User).where(User.name == rows[0][0])).first()
        assert user is not None
        user.name = new_name
    renamed = cached_select(engine, statement)
    print(f"select:       after an ORM rename in {TABLES.users} -> {renamed[0][0]} "
          f"({'fresh' if renamed[0][0] == new_name else 'STALE'})")
    if renamed[0][0] != new_name:
        raise SystemExit("cached_select served a row from before the rename")


def main() -> None:
    print("== memo_redis: SQLAlchemy ORM sessions on PostgreSQL ==")
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
    except OperationalError as exc:
        sys.exit(f"PostgreSQL not reachable at {redact_dsn(DSN)}: {exc.orig}; "
                 "set MEMO_REDIS_PG_DSN")
    with open_cache() as cache:
        try:
            started = time.perf_counter()
            counts = build()
            print(f"database:     PostgreSQL {version} at {redact_dsn(DSN)} with "
                  f"{describe_counts(counts)} (built in {time.perf_counter() - started:.2f} s)")
            install(Sessions, engine)
            print("installed:    memo_redis.sqlalchemy.install(Sessions, engine)")
            flow(cache)
            window()
            joined()
        finally:
            Base.metadata.drop_all(engine)
            print(f"cleanup:      dropped {', '.join(TABLES.all())}")
            engine.dispose()


if __name__ == "__main__":
    main()
