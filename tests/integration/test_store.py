"""The event store, on SQLite and on the local PostgreSQL, with the same tests."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engine.store import SCHEMA_VERSION, EventStore, StoreError


def suggestion(i: int, user: str = "u1") -> dict:
    return {
        "suggestion_id": f"s{i}",
        "experiment": "genai",
        "user_id": user,
        "context": {"label": "portrait"},
        "params": {"guidance_scale": 7.5 + i, "provider": "leonardo"},
        "variant": "default",
        "expires_at": 1e10,
    }


def test_events_round_trip_in_order(store_url: str) -> None:
    store = EventStore(store_url)
    assert store.add_experiment("genai", {"name": "genai", "seed": 1})
    for i in range(3):
        assert store.add_suggestion(**suggestion(i))
    assert store.add_feedback(
        idempotency_key="k1", suggestion_id="s1", experiment="genai", user_id="u1",
        rating=4.0, signal=None, metrics={"latency_ms": 850.0},
    )  # fmt: skip
    assert store.experiment("genai")["spec"] == {"name": "genai", "seed": 1}  # type: ignore[index]
    assert store.experiment_names() == ["genai"]
    assert [r["suggestion_id"] for r in store.events("suggestions", experiment="genai")] == ["s0", "s1", "s2"]
    assert store.suggestion("s2")["params"]["guidance_scale"] == 9.5  # type: ignore[index]
    (fb,) = store.events("feedback", user_id="u1")
    assert fb["rating"] == 4.0 and fb["metrics"] == {"latency_ms": 850.0}
    assert store.suggestion("nope") is None


def test_duplicates_are_no_ops_that_say_so(store_url: str) -> None:
    store = EventStore(store_url)
    assert store.add_suggestion(**suggestion(0))
    assert not store.add_suggestion(**{**suggestion(0), "params": {"changed": True}})
    row = {"idempotency_key": "retry-1", "suggestion_id": "s0", "experiment": "genai",
           "user_id": "u1", "rating": 5.0, "signal": None, "metrics": None}  # fmt: skip
    assert store.add_feedback(**row)
    assert not store.add_feedback(**{**row, "rating": 1.0})
    assert [r["rating"] for r in store.events("feedback")] == [5.0]
    assert store.suggestion("s0")["params"] == suggestion(0)["params"]  # type: ignore[index]
    assert store.add_experiment("genai", {"v": 1})
    assert not store.add_experiment("genai", {"v": 2})
    assert store.experiment("genai")["spec"] == {"v": 1}  # type: ignore[index]
    trial = {
        "experiment": "genai",
        "trial_id": "7",
        "status": "completed",
        "params": {},
        "metrics": {"q": 1.0},
    }
    assert store.add_trials([trial, {**trial, "trial_id": "8"}]) == 2
    assert store.add_trials([trial]) == 0


def test_acknowledged_events_wait_for_the_disk_suggestions_do_not(store_url: str) -> None:
    """Feedback (and every other event) is flushed before the call returns; suggestions,
    leases we hand out, only reach the database (see engine.store's docstring)."""
    store = EventStore(store_url)
    sqlite = store_url.startswith("sqlite")
    ask = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    flushed, unflushed = (2, 1) if sqlite else ("on", "off")  # SQLite: 2 FULL, 1 NORMAL
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(ask).scalar() == flushed
    with store._unflushed.connect() as conn:
        assert conn.exec_driver_sql(ask).scalar() == unflushed
    assert store.add_suggestion(**suggestion(0))
    assert EventStore(store_url).suggestion("s0") is not None  # committed: visible to others


def test_concurrent_writers_lose_nothing(store_url: str) -> None:
    store = EventStore(store_url)

    def write(worker: int) -> None:
        for i in range(25):
            store.add_suggestion(**suggestion(worker * 100 + i, user=f"u{worker}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(store.events("suggestions"))
    assert len(rows) == 100 and len({r["suggestion_id"] for r in rows}) == 100
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs)


def test_reopening_sees_everything_and_schema_is_versioned(store_url: str) -> None:
    store = EventStore(store_url)
    store.add_suggestion(**suggestion(0))
    store.close()
    again = EventStore(store_url)
    assert again.suggestion("s0") is not None
    with again.engine.begin() as conn:
        conn.execute(sa.text("UPDATE frontier_meta SET value = :v WHERE key = 'schema_version'"),
                     {"v": str(SCHEMA_VERSION + 1)})  # fmt: skip
    with pytest.raises(StoreError, match="newer"):
        EventStore(store_url)


def test_a_version_1_store_is_upgraded_in_place(store_url: str) -> None:
    store = EventStore(store_url)
    store.add_suggestion(**suggestion(0))
    with store.engine.begin() as conn:  # what version 1 wrote: no implicit column
        conn.execute(sa.text("ALTER TABLE feedback DROP COLUMN implicit"))
        conn.execute(sa.text("UPDATE frontier_meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(
            sa.text(
                "INSERT INTO feedback (idempotency_key, suggestion_id, experiment, user_id, rating, "
                "recorded_at) VALUES ('old', 's0', 'genai', 'u0', 4, 0)"
            )
        )
    store.close()
    upgraded = EventStore(store_url)
    assert upgraded.feedback_for("old")["implicit"] is None  # type: ignore[index]
    assert upgraded.add_feedback(
        idempotency_key="new", suggestion_id="s0", experiment="genai", user_id="u0", implicit={"retries": 2.0}
    )
    assert upgraded.feedback_for("new")["implicit"] == {"retries": 2.0}  # type: ignore[index]
    with upgraded.engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT value FROM frontier_meta WHERE key = 'schema_version'")
        ).scalar()
    assert version == str(SCHEMA_VERSION)


def test_export_to_parquet(store_url: str, tmp_path: Path) -> None:
    store = EventStore(store_url)
    for i in range(3):
        store.add_suggestion(**suggestion(i))
    path = store.export("suggestions", tmp_path / "suggestions.parquet")
    df = pd.read_parquet(path)
    assert list(df["suggestion_id"]) == ["s0", "s1", "s2"]
    assert '"provider": "leonardo"' in df["params"].iloc[0]
    with pytest.raises(ValueError, match="choose one of"):
        store.export("nope", tmp_path / "x.parquet")


def test_bad_urls_are_clear_errors() -> None:
    with pytest.raises(StoreError, match="not understood"):
        EventStore("nosuchdb://x")
    with pytest.raises(StoreError, match="cannot open"):
        EventStore("postgresql://postgres@127.0.0.1:1/none")
