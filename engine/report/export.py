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

from engine.store import TABLES, EventStore, write_table

__all__ = ["DECISIONS", "EXPORTED", "export_experiment"]

EXPORTED = (
    "trials", "suggestions", "feedback", "assignments", "preferences", "contexts",
    "variants", "models", "jobs", "tombstones",
)  # fmt: skip
DECISIONS = frozenset({"promoted", "rolled_back", "ramped", "activated"})


def export_experiment(
    store: EventStore, experiment: str, out: Path, fmt: Literal["parquet", "csv"] = "parquet"
) -> dict[str, tuple[Path, int]]:
    """Write every table of `experiment` under `out`; returns each file and its rows."""
    if store.experiment(experiment) is None:
        raise ValueError(f"experiment {experiment!r} is not in the store at {store.url!r}")
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
    path = out / f"decisions.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    written["decisions"] = (path, len(frame))
    return written


def _by(state: dict[str, object]) -> str | None:
    """Who decided: guardrails or an admin (variants), an admin or a retrain (models)."""
    decision = state.get("decision")
    found = decision.get("by") if isinstance(decision, dict) else state.get("by")
    return str(found) if found else None
