"""How events are appended: every write is an insert that ignores a key already there (a
retried write is a no-op that says so); on PostgreSQL the tables read by `seq` are locked
against other writers so that seq order is commit order; on SQLite a suggestion, the
write every online request makes, skips SQLAlchemy's execution layer.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from engine.store.errors import StoreError, StoreUnavailable
from engine.store.schema import suggestions

__all__ = ["append", "increment", "insert_ignore", "insert_suggestion_sqlite"]

# Tables that readers follow by `seq` (engines learn feedback, preferences and feature
# contexts that way): a reader that has seen seq n must never see a lower seq appear
# later. SQLite has one writer at a time, so seqs commit in order. On PostgreSQL a
# sequence value is drawn before the commit, so two writers could commit out of order:
# each writer holds a table lock that only writers take (readers never wait) from before
# its seq is drawn until its commit, which makes seq order commit order there too.
_READ_IN_SEQ_ORDER = {
    "feedback",
    "preferences",
    "suggestions",
    "contexts",
    "variants",
    "assignments",
    "models",
    "jobs",
    "tombstones",
}


def append(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert new rows in the connection's transaction, in seq order (`_READ_IN_SEQ_ORDER`);
    returns how many were new."""
    if table.name in _READ_IN_SEQ_ORDER and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE")
    return insert_ignore(conn, table, rows)


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    stmt = _insert_statement(conn.dialect.name, table)
    return sum(len(conn.execute(stmt, dict(r)).all()) for r in rows)


def increment(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Add one to a counter row (`n`), made at 1 if absent: one upsert on either backend."""
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {dialect!r}; use SQLite or PostgreSQL")
    insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table).values(**row, n=1)
    conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_={"n": table.c.n + 1}))


@functools.cache
def _insert_statement(dialect: str, table: sa.Table) -> Any:
    """Built once per table and dialect (SQLAlchemy compiles it once per set of row keys)."""
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        raise StoreError(f"unsupported database {dialect!r}; use SQLite or PostgreSQL")
    # RETURNING counts reliably on both backends (psycopg reports rowcount -1 here)
    return stmt.returning(table.c[next(iter(table.primary_key)).name])


# Every suggest writes one row: on SQLite that insert runs on the driver directly, its SQL
# compiled once here by SQLAlchemy (its execution layer cost 0.2-0.3 ms of the ~0.5 ms a
# suggest spent in a Serve replica; measured with benchmarks/serve.py's setup).
_SUGGESTION_COLUMNS = [c.name for c in suggestions.c if c.name != "seq"]
_SQLITE_SUGGESTION = str(
    sqlite.insert(suggestions)
    .on_conflict_do_nothing()
    .compile(dialect=sqlite.dialect(), column_keys=_SUGGESTION_COLUMNS)
)


def insert_suggestion_sqlite(engine: Engine, values: Mapping[str, Any], url: str) -> bool:
    """Insert a suggestion (JSON columns already encoded) unless its id is taken, and commit;
    True when it was new."""
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(_SQLITE_SUGGESTION, tuple(values[k] for k in _SUGGESTION_COLUMNS))
        stored = cur.rowcount == 1
        conn.commit()
    except sqlite3.OperationalError as e:  # locked past the busy timeout: no SQLAlchemy here
        raise StoreUnavailable(f"the store at {url!r} did not answer: {e}") from e
    finally:
        conn.close()
    return stored
