"""The store's tables, on their own: every other module of the store builds on them.

Each table is append-only: an event has a global order (`seq`), a unique key (a retried
write finds it taken) and a write time. `SCHEMA_VERSION` names this layout; a store
written by an older one is upgraded in place (`engine.store.upgrades`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["ANONYMOUS", "SCHEMA_VERSION", "TABLES", "feedback_key"]

ANONYMOUS = "anon-"  # the prefix of the ids anonymised rows get (EventStore.anonymise_before)

SCHEMA_VERSION = 7  # 2: feedback.implicit; 3: feedback keys scoped to suggestions, trials.run_id;
# 4: variants and assignments (variant_changes, which no release wrote, dropped); 5: feedback.comment;
# 6: models, jobs, tombstones and counts (the lifecycle: engine.experiments.versions and .schedule,
# deletion, opted-out users' aggregate counts); 7: runs (which searcher each exploration run used)

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
    sa.Column("comment", sa.Text),  # what the user said (schema version 5)
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
variants = _events(  # schema version 4
    "variants",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("change", sa.String(16), nullable=False),  # created, updated, reassigned
    sa.Column("state", sa.JSON, nullable=False),  # the variant after the change
)  # idempotency_key: "<experiment>/<variant>@<version>" when created, the request's key else
assignments = _events(  # schema version 4
    "assignments",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("layer", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(256), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),  # bumped by a change that reassigns everyone
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("holdout", sa.Boolean, nullable=False),
    sa.Column("shares", sa.JSON, nullable=False),  # every variant's chance at assignment (SRM)
)  # idempotency_key: "<experiment>/<layer>/<epoch>/<user>": the first write wins

models = _events(  # schema version 6
    "models",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("change", sa.String(16), nullable=False),  # created, activated
    sa.Column("state", sa.JSON, nullable=False),  # the version created, or the activation's why
)  # idempotency_key: "<experiment>/model@<version>" when created, the request's key else
jobs = _events(  # schema version 6
    "jobs",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("job", sa.String(32), nullable=False),  # retrain
    sa.Column("trigger", sa.String(16), nullable=False),  # schedule, request
    sa.Column("period", sa.Float),  # the scheduled time a run claims (None: on request)
    sa.Column("status", sa.String(16), nullable=False),  # started, finished, failed
    sa.Column("result", sa.JSON),
)  # idempotency_key: "<experiment>/<job>/<period>" claims a period (the first write leads)
tombstones = _events(  # schema version 6
    "tombstones",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("subject", sa.String(64), nullable=False),  # a salted hash, never the user id
    sa.Column("mode", sa.String(16), nullable=False),  # deleted, anonymised, retention
    sa.Column("rows", sa.JSON, nullable=False),  # rows changed per table
)

runs = _events(  # schema version 7
    "runs",
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("searcher", sa.String(64), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # the spec the run explored with
)  # idempotency_key: "<experiment>/<run_id>"

counts = sa.Table(  # schema version 6: aggregate counters, the only rows that are updated
    "counts",
    metadata,
    sa.Column("key", sa.String(256), primary_key=True),  # "<experiment>/<name>/<day>"
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),  # e.g. opted_out_suggestions
    sa.Column("day", sa.String(10), nullable=False),  # UTC, YYYY-MM-DD
    sa.Column("n", sa.BigInteger, nullable=False),
)

TABLES: dict[str, sa.Table] = {
    t.name: t
    for t in (
        experiments, suggestions, feedback, trials, preferences, contexts, variants, assignments,
        models, jobs, tombstones, runs,
    )
}  # fmt: skip


def feedback_key(suggestion_id: str, idempotency_key: str) -> str:
    """The stored (unique) key: the client's key within its suggestion."""
    return f"{suggestion_id}/{idempotency_key}"
