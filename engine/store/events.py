"""The durable event log: experiments, suggestions, feedback, trials, preferences, contexts.

`EventStore` is the API; the tables are `engine.store.schema`, how a write appends
`engine.store.writes`, how every call is bounded in time `engine.store.bounded`. A SQLite
file (WAL) by default, PostgreSQL by URL (`FRONTIER_STORE=postgresql://…`). Every event
has a unique idempotency key, so a retried write is a no-op that says so. A call returns
only after the transaction committed: that is when the engine may acknowledge the event
to its caller. Online state is a cache rebuilt by replaying these tables in `seq` order.

Rows of a table become visible in `seq` order (see `engine.store.writes`), so a reader
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
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.store import queries, writes
from engine.store.bounded import DEFAULT_TIMEOUT_S, Breaker, create_engine
from engine.store.errors import StoreError
from engine.store.schema import (
    ANONYMOUS,
    TABLES,
    assignments,
    contexts,
    counts,
    experiments,
    feedback,
    feedback_key,
    metadata,
    preferences,
    suggestions,
    tombstones,
    trials,
)
from engine.store.upgrades import check_schema

__all__ = ["EventStore", "default_store_url", "write_frame", "write_table"]

DEFAULT_STORE = Path("results") / "frontier.db"
LEGACY_RUN = "legacy"  # the run of trials published before runs had ids
_LIFECYCLE = frozenset({"variants", "models", "jobs", "runs"})


def write_table(rows: Sequence[Mapping[str, Any]], table: sa.Table, path: str | Path) -> Path:
    """Rows of `table` as Parquet, or CSV when `path` ends in .csv (JSON columns as JSON text)."""
    df = pd.DataFrame(list(rows), columns=[c.name for c in table.c])
    for column in table.c:
        if isinstance(column.type, sa.JSON):
            df[column.name] = df[column.name].map(lambda v: None if v is None else json.dumps(v))
    return write_frame(df, path)


def write_frame(df: pd.DataFrame, path: str | Path) -> Path:
    """A table as Parquet, or CSV when `path` ends in .csv; its folder made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


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
    not for one per queued request (`breaker`).
    """

    def __init__(self, url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url or default_store_url()
        self.breaker = Breaker(self.url, timeout_s)
        try:
            self.engine: Engine = create_engine(self.url, timeout_s)
            self._unflushed: Engine = create_engine(self.url, timeout_s, flush=False)
            metadata.create_all(self.engine)
        except sa.exc.ArgumentError as e:
            raise StoreError(
                f"store URL {self.url!r} is not understood ({e}); "
                "use sqlite:///path.db or postgresql://user@host/db"
            ) from None
        except sa.exc.OperationalError as e:
            raise StoreError(f"cannot open the store at {self.url!r}: {e.orig}") from None
        check_schema(self.engine, self.url)

    # -- writes: each returns True when stored, False when the key was already there --------

    def add_experiment(self, name: str, spec: Mapping[str, Any]) -> bool:
        return self._append(experiments, [{"name": name, "spec": dict(spec)}]) == 1

    def add_suggestion(self, **row: Any) -> bool:
        """Committed without waiting for the disk (see the module's docstring)."""
        if self._unflushed.dialect.name != "sqlite":
            return self._append(suggestions, [row], self._unflushed) == 1
        values = {**row, "recorded_at": time.time()}  # JSON columns as SQLAlchemy writes them
        values["context"], values["params"] = json.dumps(row["context"]), json.dumps(row["params"])
        with self.breaker.call():
            return writes.insert_suggestion_sqlite(self._unflushed, values, self.url)

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

    def add_event(self, table: str, **row: Any) -> bool:
        """A lifecycle event (engine.experiments): a variant created or changed, a model
        version created or activated, a job claimed or finished, an exploration run published."""
        if table not in _LIFECYCLE:
            raise ValueError(f"{table!r} is not a lifecycle table: {sorted(_LIFECYCLE)}")
        return self._append(TABLES[table], [row]) == 1

    def assign(self, *, experiment: str, layer: str, epoch: int, user_id: str, **row: Any) -> dict[str, Any]:
        """Store a user's assignment unless one is stored already; returns the stored one:
        the first write wins, whichever replica made it."""
        key = f"{experiment}/{layer}/{epoch}/{user_id}"
        values = {"idempotency_key": key, "experiment": experiment, "layer": layer, "epoch": epoch,
                  "user_id": user_id, **row, "recorded_at": time.time()}  # fmt: skip
        if self._append(assignments, [values]):
            return values  # ours is the first
        found = self._one(queries.ASSIGNMENT, key)
        if found is None:  # rows are never deleted: a key written or found must read back
            raise StoreError(f"assignment {key!r} was written but cannot be read back from {self.url!r}")
        return found

    # -- deletion: the one exception to append-only ------------------------------------------

    def forget(self, experiment: str, user_id: str) -> dict[str, int]:
        """Delete every event of one user in one experiment and record a tombstone (which
        names no one), in one transaction; returns the rows deleted per table (none: nothing
        is recorded)."""
        deleted: dict[str, int] = {}
        with self._connect(begin=True) as conn:
            for table in (feedback, suggestions, assignments, preferences):
                where = (table.c.experiment == experiment, table.c.user_id == user_id)
                deleted[table.name] = conn.execute(table.delete().where(*where)).rowcount
            if any(deleted.values()):
                self._tombstone(conn, experiment, "deleted", deleted)
        return deleted

    def anonymise_before(self, experiment: str, cutoff: float) -> dict[str, int]:
        """Unlink every suggestion written before `cutoff`, and its feedback and the
        assignments of that time, from its user: each gets an id of its own (`anon-<seq>`),
        so the population still learns from it and nothing leads back to the user; records
        a tombstone when anything changed. Returns the rows changed per table."""
        changed = {"suggestions": 0, "feedback": 0, "assignments": 0}
        with self._connect(begin=True) as conn:
            old = conn.execute(queries.NAMED_BEFORE, {"experiment": experiment, "cutoff": cutoff}).all()
            for seq, sid in old:
                new = f"{ANONYMOUS}{seq}"
                changed["suggestions"] += conn.execute(
                    suggestions.update()
                    .where(suggestions.c.seq == seq)
                    .values(suggestion_id=new, user_id=new)
                ).rowcount
                rekey = sa.func.substr(feedback.c.idempotency_key, len(sid) + 1)
                changed["feedback"] += conn.execute(
                    feedback.update()
                    .where(feedback.c.suggestion_id == sid)
                    .values(suggestion_id=new, user_id=new, idempotency_key=sa.literal(new) + rekey)
                ).rowcount
            a = assignments
            for (seq,) in conn.execute(queries.ASSIGNED_BEFORE, {"experiment": experiment, "cutoff": cutoff}):
                changed["assignments"] += conn.execute(
                    a.update().where(a.c.seq == seq).values(user_id=f"{ANONYMOUS}a{seq}")
                ).rowcount
            if any(changed.values()):
                self._tombstone(conn, experiment, "anonymised", changed)
        return changed

    def _tombstone(self, conn: sa.Connection, experiment: str, mode: str, rows: dict[str, int]) -> None:
        key = uuid.uuid4().hex
        row = {"idempotency_key": key, "experiment": experiment, "subject": key, "mode": mode, "rows": rows}
        writes.append(conn, tombstones, [{**row, "recorded_at": time.time()}])

    def count(self, experiment: str, name: str, day: str) -> None:
        """Add one to an aggregate counter (no event row: what opted-out users leave)."""
        key = f"{experiment}/{name}/{day}"
        with self._connect(begin=True) as conn:
            writes.increment(conn, counts, {"key": key, "experiment": experiment, "name": name, "day": day})

    def counts(self, experiment: str) -> dict[str, int]:
        """Every counter of an experiment, summed over days."""
        query = sa.select(counts.c.name, sa.func.sum(counts.c.n)).where(counts.c.experiment == experiment)
        with self._connect() as conn:
            return {name: int(n) for name, n in conn.execute(query.group_by(counts.c.name))}

    def seen(self, experiment: str, user_id: str) -> bool:
        """Whether anything of this user is stored: a suggestion or preferences."""
        params = {"experiment": experiment, "user_id": user_id}
        with self._connect() as conn:
            return any(conn.execute(query, params).first() is not None for query in queries.USER_SEEN)

    def since(self, table: str, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        """An experiment's rows of `table` (variants, assignments) after `after_seq`, in order."""
        t = TABLES[table]
        query = sa.select(t).where(t.c.experiment == experiment, t.c.seq > after_seq).order_by(t.c.seq)
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def preferences(self, experiment: str, user_id: str) -> dict[str, float] | None:
        """The user's latest preference weights, or None when they set none."""
        params = {"experiment": experiment, "user_id": user_id}
        with self._connect() as conn:
            found = conn.execute(queries.LATEST_PREFERENCES, params).scalar()
        return dict(found) if found is not None else None

    def preferences_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        """Preference changes in write order (other engines over this store re-score those users)."""
        return self._rows(queries.PREFERENCES_SINCE, experiment=experiment, after=after_seq)

    def add_context(self, experiment: str, label: str) -> bool:
        """Ask for a context label; whether it is admitted follows from the table's order."""
        row = {"idempotency_key": f"{experiment}/{label}", "experiment": experiment, "label": label}
        return self._append(contexts, [row]) == 1

    def contexts_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        """Context labels asked for, in write order."""
        return self._rows(queries.CONTEXTS_SINCE, experiment=experiment, after=after_seq)

    def _append(
        self, table: sa.Table, rows: Sequence[Mapping[str, Any]], engine: Engine | None = None
    ) -> int:
        now = time.time()
        with self._connect(engine, begin=True) as conn:
            return writes.append(conn, table, [{"recorded_at": now, **r} for r in rows])

    # -- reads --------------------------------------------------------------------------------

    def experiment(self, name: str) -> dict[str, Any] | None:
        return self._one(queries.EXPERIMENT, name)

    def experiment_names(self) -> list[str]:
        with self._connect() as conn:
            return list(conn.execute(sa.select(experiments.c.name).order_by(experiments.c.seq)).scalars())

    def suggestion(self, suggestion_id: str) -> dict[str, Any] | None:
        return self._one(queries.SUGGESTION, suggestion_id)

    def feedback_for(self, suggestion_id: str, idempotency_key: str) -> dict[str, Any] | None:
        """The feedback stored on this suggestion under this key, if any."""
        return self._one(queries.FEEDBACK_FOR, feedback_key(suggestion_id, idempotency_key))

    def events(self, table: str, **where: Any) -> Iterator[dict[str, Any]]:
        """Rows of one table in write order, filtered by equal columns (replay reads this)."""
        t = TABLES[table]
        query = sa.select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(t.c.seq)
        with self._connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)

    def published_runs(self, experiment: str) -> dict[str, list[dict[str, Any]]]:
        """Published trials by exploration run, each run's in write order, the run
        published last last (trials published before runs had ids form run `legacy`)."""
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in self.events("trials", experiment=experiment):
            by_run.setdefault(row["run_id"] or LEGACY_RUN, []).append(row)
        return dict(sorted(by_run.items(), key=lambda item: item[1][-1]["seq"]))

    def feedback_since(
        self, experiment: str, after_seq: int, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Feedback rows with their suggestion's params, context and variant, in write order."""
        query = queries.FEEDBACK_SINCE[user_id is not None]
        return self._rows(query, experiment=experiment, after=after_seq, user_id=user_id)

    def suggestions_since(self, experiment: str, after_seq: int) -> list[dict[str, Any]]:
        return self._rows(queries.SUGGESTIONS_SINCE, experiment=experiment, after=after_seq)

    def open_suggestions(self, experiment: str, user_id: str, now: float) -> list[dict[str, Any]]:
        """A user's unexpired suggestions that have no feedback yet."""
        return self._rows(queries.OPEN_SUGGESTIONS, experiment=experiment, user_id=user_id, now=now)

    def _one(self, query: sa.Select[Any], key: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(query, {"key": key}).first()
        return dict(row._mapping) if row else None

    def _rows(self, query: sa.Select[Any], **params: Any) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query, params)]

    def export(self, table: str, path: str | Path, **where: Any) -> Path:
        """Write one table's rows (filtered by equal columns, e.g. experiment=...) to Parquet,
        or to CSV when `path` ends in .csv; JSON columns as JSON text."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
        return write_table(list(self.events(table, **where)), TABLES[table], path)

    def ping(self) -> None:
        """One round trip to the database (a health check), bounded like every call."""
        with self._connect() as conn:
            conn.execute(queries.PING)

    @contextlib.contextmanager
    def _connect(self, engine: Engine | None = None, begin: bool = False) -> Iterator[sa.Connection]:
        """A connection (in a transaction with `begin`) for one bounded call."""
        engine = engine or self.engine
        # entered left to right: the breaker is checked before Engine.connect() connects
        with self.breaker.call(), engine.begin() if begin else engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
        self._unflushed.dispose()
