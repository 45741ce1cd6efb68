"""One experiment's tables, one file per table (Parquet or CSV), for a notebook or a warehouse.

Every table that holds the experiment's rows is written whole, in write order, JSON columns
as JSON text, plus `decisions`: the promotions, rollbacks and ramp steps of its variants
and the activations of its model versions, one row each with who decided and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd

from engine.spec import ExperimentSpec
from engine.store import TABLES, EventStore, write_frame, write_table

__all__ = ["DECISIONS", "EXPORTED", "export_experiment", "stored_spec"]

EXPORTED = (
    "trials", "suggestions", "feedback", "assignments", "preferences", "contexts",
    "variants", "models", "jobs", "tombstones", "runs",
)  # fmt: skip
DECISIONS = frozenset({"promoted", "rolled_back", "ramped", "activated"})


def stored_spec(store: EventStore, experiment: str) -> ExperimentSpec:
    """The experiment's stored spec; a ValueError that names the store when it has none."""
    stored = store.experiment(experiment)
    if stored is None:
        raise ValueError(f"experiment {experiment!r} is not in the store at {store.url!r}")
    return ExperimentSpec.model_validate(stored["spec"])


def export_experiment(
    store: EventStore, experiment: str, out: Path, fmt: Literal["parquet", "csv"] = "parquet"
) -> dict[str, tuple[Path, int]]:
    """Write every table of `experiment` under `out`; returns each file and its rows."""
    stored_spec(store, experiment)  # it exists
    written = {}
    for table in EXPORTED:
        rows = list(store.events(table, experiment=experiment))
        written[table] = (write_table(rows, TABLES[table], out / f"{table}.{fmt}"), len(rows))
    decisions = [
        {
            "seq": r["seq"],
            "table": table,
            "name": r.get("variant", "model"),
            "version": r["version"],
            "change": r["change"],
            "by": _by(r["state"]),
            "state": json.dumps(r["state"]),
            "recorded_at": r["recorded_at"],
        }
        for table in ("variants", "models")
        for r in store.events(table, experiment=experiment)
        if r["change"] in DECISIONS
    ]
    columns = ["seq", "table", "name", "version", "change", "by", "state", "recorded_at"]
    frame = pd.DataFrame(decisions, columns=columns).sort_values("recorded_at", kind="stable")
    path = write_frame(frame, out / f"decisions.{fmt}")
    written["decisions"] = (path, len(frame))
    return written


def _by(state: dict[str, object]) -> str | None:
    """Who decided: guardrails or an admin (variants), an admin or a retrain (models)."""
    decision = state.get("decision")
    found = decision.get("by") if isinstance(decision, dict) else state.get("by")
    return str(found) if found else None
