"""The durable event log: experiments, suggestions, feedback, trials, variant changes.

Append-only tables on SQLAlchemy Core. A SQLite file (WAL) by default, PostgreSQL by URL
(`FRONTIER_STORE=postgresql://…`). Every event has a unique idempotency key, so a retried
write is a no-op that says so. A call returns only after the transaction committed:
that is when the engine may acknowledge the event to its caller. Online state is a cache
rebuilt by replaying these tables in `seq` order.

Rows of a table become visible in `seq` order (see `_READ_IN_SEQ_ORDER`), so a reader
that remembers the last seq it read never misses a row committed later.

Commits are flushed to disk (fsync) before they return, except suggestions': those are
leases we hand out, not events a caller waits to have acknowledged, so their commit
skips the flush (SQLite `synchronous=NORMAL` in WAL mode, PostgreSQL
`synchronous_commit=off`). A crash of our processes loses none of them; a crash of the
machine or database may lose the newest few, whose feedback is then refused as unknown
(404), never silently dropped; and every flushed commit flushes the suggestions before it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg.errors import _WaitTimeout
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SCHEMA_VERSION",
    "TABLES",
    "UNAVAILABLE",
    "EventStore",
    "StoreError",
    "StoreUnavailable",
    "default_store_url",
]

SCHEMA_VERSION = 3  # 2: feedback.implicit; 3: feedback keys scoped to suggestions, trials.run_id
DEFAULT_STORE = Path("results") / "frontier.db"
# How long any store call may wait for the database (connect, lock, statement, answer)
# before it raises one of UNAVAILABLE: a service answers 503 then instead of hanging.
DEFAULT_TIMEOUT_S = 2.0

metadata = sa.MetaData()

meta = sa.Table(
    "frontier_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


def _events(name: str, *columns: sa.Column[Any], key: str = "idempotency_key") -> sa.Table:
    """An append-only table: a global order (`seq`), a unique key, a write time."""
    return sa.Table(
        name,
        metadata,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(key, sa.String(256), nullable=False, unique=True),
        *columns,
        sa.Column("recorded_at", sa.Float, nullable=False),
    )


experiments = _events(
    "experiments",
    sa.Column("spec", sa.JSON, nullable=False),
    key="name",
)
suggestions = _events(
    "suggestions",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("context", sa.JSON),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("variant", sa.String(128)),
    sa.Column("expires_at", sa.Float, nullable=False),
    key="suggestion_id",
)
feedback = _events(
    "feedback",
    sa.Column("suggestion_id", sa.String(256), nullable=False, index=True),
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("rating", sa.Float),
    sa.Column("signal", sa.String(32)),
    sa.Column("metrics", sa.JSON),
    sa.Column("implicit", sa.JSON),  # time_to_accept_s, retries (schema version 2)
)  # idempotency_key: "<suggestion id>/<the client's key>" (`feedback_key`, schema version 3)
trials = _events(
    "trials",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64)),  # the exploration run (schema version 3; NULL before)
    sa.Column("trial_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON),
    sa.Column("error", sa.Text),
)
preferences = _events(  # schema version 2; a new table needs no upgrade step
    "preferences",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("weights", sa.JSON, nullable=False),
)
contexts = _events(  # schema version 3; a new table needs no upgrade step
    "contexts",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("label", sa.String(128), nullable=False),
)  # idempotency_key: "<experiment>/<label>"; admitted in seq order up to the spec's max
variant_changes = _events(
    "variant_changes",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("change", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON),
)

TABLES: dict[str, sa.Table] = {
    t.name: t for t in (experiments, suggestions, feedback, trials, preferences, contexts, variant_changes)
}


# Tables that readers follow by `seq` (engines learn feedback, preferences and feature
# contexts that way): a reader that has seen seq n must never see a lower seq appear
# later. SQLite has one writer at a time, so seqs commit in order. On PostgreSQL a
# sequence value is drawn before the commit, so two writers could commit out of order:
# each writer holds a table lock that only writers take (readers never wait) from before
# its seq is drawn until its commit, which makes seq order commit order there too.
_READ_IN_SEQ_ORDER = {"feedback", "preferences", "suggestions", "contexts"}


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked."""


class StoreUnavailable(StoreError):
    """The store did not answer within its timeout, or did not a moment ago: retry shortly."""


# What the database driver raises while the store cannot be reached (down, restarting,
# dropped, locked or silent past the timeout): a caller may retry, unlike a bug's error.
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, StoreUnavailable)


def default_store_url() -> str:
    """`FRONTIER_STORE` if set, else a SQLite file under results/."""
    url = os.environ.get("FRONTIER_STORE")
    if url:
        return url
    DEFAULT_STORE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_STORE.resolve()}"  # absolute: Ray workers may run elsewhere


class EventStore:
    """Every call waits at most `timeout_s` for the database, then raises one of UNAVAILABLE.

    After a call that failed that slowly, calls fail at once (StoreUnavailable) for
    `timeout_s`, then try again: callers on one event loop then wait for one hung call,
    not for one per queued request.
    """

    def __init__(self, url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url or default_store_url()
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise StoreError(
                f"timeout_s={timeout_s!r} must be a positive number of seconds; the default is 2"
            )
        self.timeout_s = timeout_s
        self._down_until = 0.0  # time.monotonic() before which calls fail at once
        try:
            self.engine: Engine = _create_engine(self.url, timeout_s)
            self._unflushed: Engine = _create_engine(self.url, timeout_s, flush=False)
            metadata.create_all(self.engine)
        except sa.exc.ArgumentError as e:
            raise StoreError(
                f"store URL {self.url!r} is not understood ({e}); "
                "use sqlite:///path.db or postgresql://user@host/db"
            ) from None
        except sa.exc.OperationalError as e:
            raise StoreError(f"cannot open the store at {self.url!r}: {e.orig}") from None
        self._check_schema()

    def _check_schema(self) -> None:
        """Create the version mark, or upgrade an older store in place, step by step."""
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if found is None:
                _insert_ignore(conn, meta, [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
                return
            if int(found) > SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {self.url!r} has schema version {found}, newer than this "
                    f"Frontier's {SCHEMA_VERSION}; upgrade Frontier"
                )
            for version in range(int(found), SCHEMA_VERSION):
                for statement in _UPGRADES[version]:
                    conn.execute(sa.text(statement))
                conn.execute(
                    meta.update().where(meta.c.key == "schema_version").values(value=str(version + 1))
                )

    # -- writes: each returns True when stored, False when the key was already there --------

    def add_experiment(self, name: str, spec: Mapping[str, Any]) -> bool:
        return self._append(experiments, [{"name": name, "spec": dict(spec)}]) == 1

    def add_suggestion(self, **row: Any) -> bool:
        """Committed without waiting for the disk (see the module's docstring)."""
        if self._unflushed.dialect.name != "sqlite":
            return self._append(suggestions, [row], self._unflushed) == 1
        values = {**row, "recorded_at": time.time()}  # JSON columns as SQLAlchemy writes them
        values["context"], values["params"] = json.dumps(row["context"]), json.dumps(row["params"])
        with self._bounded():
            conn = self._unflushed.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute(_SQLITE_SUGGESTION, tuple(values[k] for k in _SUGGESTION_COLUMNS))
                stored = cur.rowcount == 1
                conn.commit()
            except sqlite3.OperationalError as e:  # locked past the busy timeout: no SQLAlchemy here
                raise StoreUnavailable(f"the store at {self.url!r} did not answer: {e}") from e
            finally:
                conn.close()
        return stored

    def add_feedback(self, *, idempotency_key: str, suggestion_id: str, **row: Any) -> bool:
        """False when this suggestion has feedback under this key already (keys are scoped
        to their suggestion: two suggestions may use the same key)."""
        key = feedback_key(suggestion_id, idempotency_key)
        return self._append(feedback, [{"idempotency_key": key, "suggestion_id": suggestion_id, **row}]) == 1

    def add_trials(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store finished trials, keyed by experiment, run and trial id; returns how many were new."""
        keyed = [{"idempotency_key": f"{r['experiment']}/{r['run_id']}/{r['trial_id']}", **r} for r in rows]
        return self._append(trials, keyed)

    def add_preferences(self, **row: Any) -> bool:
        return self._append(preferences, [row]) == 1

    def preferences(self, experiment: str, user_id: str) -> dict[str, float] | None:
        """The user's latest preference weights, or None when they set none."""
        with self._connect() as conn:
            found = conn.execute(_LATEST_PREFERENCES, {"experiment": experiment, "user_id": user_id}).scalar()
        return dict(found) if found is not None else None

    def preferences_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        """Preference changes in write order (other engines over this store re-score those users)."""
        with self._connect() as conn:
            rows = conn.execute(_PREFERENCES_SINCE, {"experiment": experiment, "after": after_seq})
            return [dict(row._mapping) for row in rows]

    def add_context(self, experiment: str, label: str) -> bool:
        """Ask for a context label; whether it is admitted follows from the table's order."""
        return (
            self._append(
                contexts,
                [{"idempotency_key": f"{experiment}/{label}", "experiment": experiment, "label": label}],
            )
            == 1
        )

    def contexts_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        """Context labels asked for, in write order."""
        with self._connect() as conn:
            rows = conn.execute(_CONTEXTS_SINCE, {"experiment": experiment, "after": after_seq})
            return [dict(row._mapping) for row in rows]

    def add_variant_change(self, **row: Any) -> bool:
        return self._append(variant_changes, [row]) == 1

    def _append(
        self, table: sa.Table, rows: Sequence[Mapping[str, Any]], engine: Engine | None = None
    ) -> int:
        now = time.time()
        with self._connect(engine, begin=True) as conn:
            if table.name in _READ_IN_SEQ_ORDER and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE")
            return _insert_ignore(conn, table, [{"recorded_at": now, **r} for r in rows])

    # -- reads --------------------------------------------------------------------------------

    def experiment(self, name: str) -> dict[str, Any] | None:
        return self._one(_EXPERIMENT, name)

    def experiment_names(self) -> list[str]:
        with self._connect() as conn:
            return list(conn.execute(sa.select(experiments.c.name).order_by(experiments.c.seq)).scalars())

    def suggestion(self, suggestion_id: str) -> dict[str, Any] | None:
        return self._one(_SUGGESTION, suggestion_id)

    def feedback_for(self, suggestion_id: str, idempotency_key: str) -> dict[str, Any] | None:
        """The feedback stored on this suggestion under this key, if any."""
        return self._one(_FEEDBACK_FOR, feedback_key(suggestion_id, idempotency_key))

    def events(self, table: str, **where: Any) -> Iterator[dict[str, Any]]:
        """Rows of one table in write order, filtered by equal columns (replay reads this)."""
        t = TABLES[table]
        query = sa.select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(t.c.seq)
        with self._connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)

    def feedback_since(
        self, experiment: str, after_seq: int, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Feedback rows with their suggestion's params and context, in write order."""
        query = _FEEDBACK_SINCE[user_id is not None]
        params = {"experiment": experiment, "after": after_seq, "user_id": user_id}
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query, params)]

    def suggestions_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(_SUGGESTIONS_SINCE, {"experiment": experiment, "after": after_seq})
            return [dict(row._mapping) for row in rows]

    def open_suggestions(self, experiment: str, user_id: str, now: float) -> list[dict[str, Any]]:
        """A user's unexpired suggestions that have no feedback yet."""
        params = {"experiment": experiment, "user_id": user_id, "now": now}
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(_OPEN_SUGGESTIONS, params)]

    def _one(self, query: sa.Select[Any], key: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(query, {"key": key}).first()
        return dict(row._mapping) if row else None

    def export(self, table: str, path: str | Path) -> Path:
        """Write one table to Parquet (JSON columns as JSON text)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
        df = pd.DataFrame(list(self.events(table)), columns=[c.name for c in TABLES[table].c])
        for column in TABLES[table].c:
            if isinstance(column.type, sa.JSON):
                df[column.name] = df[column.name].map(lambda v: None if v is None else json.dumps(v))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=False)
        return path

    def ping(self) -> None:
        """One round trip to the database (a health check), bounded like every call."""
        with self._connect() as conn:
            conn.execute(_PING)

    @contextlib.contextmanager
    def _connect(self, engine: Engine | None = None, begin: bool = False) -> Iterator[sa.Connection]:
        """A connection (in a transaction with `begin`) for one bounded call."""
        engine = engine or self.engine
        # entered left to right: the breaker is checked before Engine.connect() connects
        with self._bounded(), engine.begin() if begin else engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[None]:
        """One call's deadline, shared by all its waits on PostgreSQL (a ping, a reconnect,
        statements, commit). Fail at once while the store is known to hang; learn that from
        a call that failed after waiting half the timeout or more, not from one refused at once."""
        started = time.monotonic()
        if started < self._down_until:
            raise StoreUnavailable(
                f"the store at {self.url!r} did not answer within {self.timeout_s:g} s a moment "
                f"ago; calls fail at once for {self._down_until - started:.1f} s more, then try it again"
            )
        outer = getattr(_CALL, "deadline", None)
        _CALL.deadline = started + self.timeout_s if outer is None else min(outer, started + self.timeout_s)
        try:
            yield
        except UNAVAILABLE:
            now = time.monotonic()
            if now - started >= self.timeout_s / 2:
                self._down_until = now + self.timeout_s
            raise
        finally:
            _CALL.deadline = outer

    def close(self) -> None:
        self.engine.dispose()
        self._unflushed.dispose()


_PING = sa.select(meta.c.value).where(meta.c.key == "schema_version")

# The hot queries, built once: SQLAlchemy then only binds parameters (a query built per
# call cost 100-130 us more than its execution on SQLite, on every online request).
_EXPERIMENT = sa.select(experiments).where(experiments.c.name == sa.bindparam("key"))
_SUGGESTION = sa.select(suggestions).where(suggestions.c.suggestion_id == sa.bindparam("key"))
_FEEDBACK_FOR = sa.select(feedback).where(feedback.c.idempotency_key == sa.bindparam("key"))
_SUGGESTIONS_SINCE = (
    sa.select(suggestions)
    .where(suggestions.c.experiment == sa.bindparam("experiment"), suggestions.c.seq > sa.bindparam("after"))
    .order_by(suggestions.c.seq)
)
_OPEN_SUGGESTIONS = (
    sa.select(suggestions)
    .where(
        suggestions.c.experiment == sa.bindparam("experiment"),
        suggestions.c.user_id == sa.bindparam("user_id"),
        suggestions.c.expires_at > sa.bindparam("now"),
        suggestions.c.suggestion_id.not_in(sa.select(feedback.c.suggestion_id)),
    )
    .order_by(suggestions.c.seq)
)
_CONTEXTS_SINCE = (
    sa.select(contexts.c.seq, contexts.c.label)
    .where(contexts.c.experiment == sa.bindparam("experiment"), contexts.c.seq > sa.bindparam("after"))
    .order_by(contexts.c.seq)
)
_LATEST_PREFERENCES = (
    sa.select(preferences.c.weights)
    .where(
        preferences.c.experiment == sa.bindparam("experiment"),
        preferences.c.user_id == sa.bindparam("user_id"),
    )
    .order_by(preferences.c.seq.desc())
    .limit(1)
)
_PREFERENCES_SINCE = (
    sa.select(preferences)
    .where(preferences.c.experiment == sa.bindparam("experiment"), preferences.c.seq > sa.bindparam("after"))
    .order_by(preferences.c.seq)
)


# Every suggest writes one row: on SQLite that insert runs on the driver directly, its SQL
# compiled once here by SQLAlchemy (its execution layer cost 0.2-0.3 ms of the ~0.5 ms a
# suggest spent in a Serve replica; measured with benchmarks/serve.py's setup).
_SUGGESTION_COLUMNS = [c.name for c in suggestions.c if c.name != "seq"]
_SQLITE_SUGGESTION = str(
    sqlite.insert(suggestions)
    .on_conflict_do_nothing()
    .compile(dialect=sqlite.dialect(), column_keys=_SUGGESTION_COLUMNS)
)


def _feedback_since(by_user: bool) -> sa.Select[Any]:
    query = (
        sa.select(feedback, suggestions.c.params, suggestions.c.context)
        .join(suggestions, suggestions.c.suggestion_id == feedback.c.suggestion_id)
        .where(feedback.c.experiment == sa.bindparam("experiment"), feedback.c.seq > sa.bindparam("after"))
        .order_by(feedback.c.seq)
    )
    if by_user:
        query = query.where(feedback.c.user_id == sa.bindparam("user_id"))
    return query


_FEEDBACK_SINCE = {by_user: _feedback_since(by_user) for by_user in (False, True)}


def feedback_key(suggestion_id: str, idempotency_key: str) -> str:
    """The stored (unique) key: the client's key within its suggestion."""
    return f"{suggestion_id}/{idempotency_key}"


# In-place upgrades from each version to the next; the rows stay, their meaning too.
_UPGRADES: dict[int, list[str]] = {
    1: ["ALTER TABLE feedback ADD COLUMN implicit JSON"],
    2: [
        # keys were global (a key used on two suggestions kept only the first feedback):
        # scope every key to its suggestion; keys made from the content were "<id>:<hash>"
        "UPDATE feedback SET idempotency_key = suggestion_id || '/auto:' || "
        "substr(idempotency_key, length(suggestion_id) + 2) "
        "WHERE substr(idempotency_key, 1, length(suggestion_id) + 1) = suggestion_id || ':'",
        "UPDATE feedback SET idempotency_key = suggestion_id || '/' || idempotency_key "
        "WHERE substr(idempotency_key, 1, length(suggestion_id) + 6) <> suggestion_id || '/auto:'",
        "ALTER TABLE trials ADD COLUMN run_id VARCHAR(64)",
    ],
}


def _create_engine(url: str, timeout_s: float, flush: bool = True) -> Engine:
    """An engine whose commits wait for the disk, or (`flush=False`) only for the database,
    and whose every wait for the database ends after `timeout_s` (see `_pg_timeouts`)."""
    if url.startswith("sqlite"):
        # a local file never stops answering; it waits only for another writer's lock
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})
        synchronous = "FULL" if flush else "NORMAL"

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers go on while a writer commits; FULL sync makes a commit durable.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    settings = "" if flush else " -c synchronous_commit=off"
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=_pg_timeouts(timeout_s, settings))
    if engine.dialect.driver == "psycopg":

        @sa.event.listens_for(engine, "do_connect")
        def _bounded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            left = _time_left(timeout_s)  # a reconnect after a failed ping gets what is left
            if left <= 0:
                raise psycopg.OperationalError(f"the database did not answer within {timeout_s:g} s")
            conn = _BoundedConnection.connect(
                *cargs, **{**cparams, "connect_timeout": max(2, math.ceil(left))}
            )
            conn.timeout_s = timeout_s
            return conn

    return engine


def _pg_timeouts(timeout_s: float, settings: str) -> dict[str, Any]:
    """libpq's bounds, each for a way the server or the network can fail to answer.

    The server cancels a statement or lock wait a little before `timeout_s` (a clean
    error, the connection stays usable); the client gives up on any answer at
    `timeout_s` (`_BoundedConnection`), which also covers a network that stops
    answering (a server-side timeout cannot); TCP gives up on unacknowledged data at
    `timeout_s` and finds dead idle connections by keepalives.
    """
    server_ms = max(1, int(timeout_s * 900))
    return {
        "connect_timeout": max(2, math.ceil(timeout_s)),  # whole seconds, 2 at least (libpq)
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": max(1, int(timeout_s * 1000)),
        "options": f"-c statement_timeout={server_ms} -c lock_timeout={server_ms}{settings}",
    }


# The deadline of the store call running in this thread (`EventStore._bounded`).
_CALL = threading.local()


def _time_left(timeout_s: float) -> float:
    """Seconds left to the running call's deadline; `timeout_s` outside a bounded call."""
    deadline = getattr(_CALL, "deadline", None)
    return timeout_s if deadline is None else deadline - time.monotonic()


class _BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits for the server (query, commit, ping) end at the
    call's deadline: the connection is closed then (its state is unknown) and the call
    raises OperationalError, which SQLAlchemy reads as a disconnect."""

    timeout_s: float = DEFAULT_TIMEOUT_S

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        left = _time_left(self.timeout_s) if timeout is None else timeout
        try:
            if left <= 0:
                raise _WaitTimeout("no time left")
            return super().wait(gen, interval, left)
        except _WaitTimeout:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.timeout_s:g} s; connection closed"
            ) from None


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    stmt = _insert_statement(conn.dialect.name, table)
    return sum(len(conn.execute(stmt, dict(r)).all()) for r in rows)


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
