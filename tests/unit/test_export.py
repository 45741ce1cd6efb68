"""`frontier export`: every table of one experiment, one file per table, rows as stored."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engine.cli import main as frontier
from engine.experiments import VariantSpec
from engine.online import Feedback, OnlineEngine
from engine.online.lifecycle import EXPORT_FORMAT
from engine.report import EXPORTED
from engine.spec import ExperimentSpec, load_spec
from engine.store import EventStore

SPEC = load_spec("configs/genai.yaml")


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    """Two experiments with suggestions, feedback, preferences, variants and a promotion, a
    model version activated, a published trial and a deleted user."""
    store = EventStore(f"sqlite:///{tmp_path / 'store.db'}")
    engine = OnlineEngine(store)
    engine.register(SPEC)
    engine.register(ExperimentSpec.model_validate({**SPEC.model_dump(mode="json"), "name": "other"}))
    engine.create_variant(
        "genai", VariantSpec(name="plain", control=True, payload={"template": "a {subject}"})
    )
    engine.create_variant("genai", VariantSpec(name="vivid", payload={"template": "a vivid {subject}"}))
    for name in ("genai", "other"):
        for i in range(12):
            s = engine.suggest(name, f"u{i}", "portrait")
            engine.feedback(
                s.suggestion_id, Feedback(rating=3 + i % 3, comment="too dark" if i % 4 else None)
            )
    engine.set_preferences("genai", "u1", {"quality": 1.0, "speed": 1.0})
    engine.decide("genai", "vivid", "promote")
    doc = {"format": EXPORT_FORMAT, "experiment": "x", "version": "1.0.0", "priors": {"noise": 0.25}}
    engine.activate("genai", engine.import_version("genai", doc)["version"], "a test")
    engine.forget("genai", "u11")
    trial = {"experiment": "genai", "run_id": "r1", "trial_id": "t1", "status": "completed",
             "params": {"guidance_scale": 7.0}, "metrics": {"quality": 0.8}, "error": None}  # fmt: skip
    store.add_trials([trial])
    return store


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_table_is_exported_with_the_stores_rows(store: EventStore, tmp_path: Path, fmt: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = frontier(
            ["export", "genai", "--format", fmt, "--out", str(tmp_path / "x"), "--store", store.url]
        )
    assert code == 0
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    with store.engine.connect() as conn:
        for table in EXPORTED:
            counted = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE experiment = 'genai'")
            ).scalar()
            frame = read(tmp_path / "x" / f"{table}.{fmt}")
            assert len(frame) == counted, table
            assert f"{table:<12} {counted:>8} rows" in out.getvalue()
    assert len(read(tmp_path / "x" / f"feedback.{fmt}")) == 11  # u11's went with them
    feedback = read(tmp_path / "x" / f"feedback.{fmt}")
    assert set(feedback["experiment"]) == {"genai"}  # nothing of the other experiment
    decisions = read(tmp_path / "x" / f"decisions.{fmt}")
    assert list(zip(decisions["name"], decisions["change"], decisions["by"], strict=True)) == [
        ("vivid", "promoted", "admin"),
        ("model", "activated", "admin"),
    ]
    variants = read(tmp_path / "x" / f"variants.{fmt}")
    assert json.loads(variants["state"].iloc[0])["payload"] == {"template": "a {subject}"}  # JSON as text


def test_an_unknown_experiment_is_a_clear_error(store: EventStore, tmp_path: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert frontier(["export", "nope", "--store", store.url, "--out", str(tmp_path / "y")]) == 2
    assert "experiment 'nope' is not in the store" in err.getvalue()
    assert not (tmp_path / "y").exists()
