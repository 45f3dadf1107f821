"""Engines for the store: an SQLite file by default, PostgreSQL by URL.

SQLite runs in WAL mode so API readers never wait for a publish and always read one committed
snapshot; we take over BEGIN from the sqlite3 driver (SQLAlchemy's documented recipe) so that a
read transaction really is one snapshot and a write transaction can start with BEGIN IMMEDIATE
(taking the write lock up front instead of failing on lock upgrade).
PostgreSQL runs at REPEATABLE READ so a multi-statement read is one snapshot as well.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import SQLAlchemyError

from agrisat.errors import ConfigError, RunStoreError
from agrisat.store.schema import metadata


def utcnow() -> dt.datetime:
    """Naive UTC, the store's time convention (see schema.py)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def to_utc_naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def make_engine(url: str) -> Engine:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]  # psycopg 3, not psycopg2
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                   pool_size=8, max_overflow=32)
            _sqlite_setup(engine)
            db_file = engine.url.database
            if db_file and db_file != ":memory:":
                Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith("postgresql+"):
            engine = create_engine(url, isolation_level="REPEATABLE READ", pool_size=8, max_overflow=32,
                                   pool_pre_ping=True)
        else:
            raise ConfigError(f"AGRISAT_DB_URL: unsupported database URL scheme in {_redact(url)!r} "
                              "(use sqlite:///path or postgresql://...)")
    except (ValueError, ImportError) as e:
        raise ConfigError(f"AGRISAT_DB_URL: {_redact(url)!r}: {e}") from e
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """One write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """One read snapshot."""
    with engine.connect() as conn, conn.begin():
        yield conn


def init_schema(engine: Engine) -> None:
    """Create missing tables (idempotent)."""
    try:
        metadata.create_all(engine)
    except SQLAlchemyError as e:
        raise RunStoreError(f"{_redact(str(engine.url))}: cannot create store tables: {e.__class__.__name__}: {e}") from e


def schema_ready(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return set(metadata.tables) <= names


def _redact(url: str) -> str:
    """A URL without its password, for error messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as a placeholder, never echoed
        return "<unparseable URL>"
