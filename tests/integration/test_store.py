"""The event store, on SQLite and on the local PostgreSQL, with the same tests."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from engine.online import OnlineEngine, Suggestion
from engine.spec import load_spec
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
    change = {"experiment": "genai", "variant": "control", "version": "1.0.0", "change": "created"}
    assert store.add_event("variants", idempotency_key="v1", state={"weight": 1.0}, **change)
    assert not store.add_event("variants", idempotency_key="v1", state={"weight": 2.0}, **change)
    (stored,) = store.since("variants", "genai", 0)
    assert stored["state"] == {"weight": 1.0} and stored["version"] == "1.0.0"
    where: dict[str, Any] = {"experiment": "genai", "layer": "genai", "epoch": 0, "user_id": "u1"}
    first = store.assign(**where, variant="control", holdout=False, shares={"control": 1.0})
    again = store.assign(**where, variant="treat", holdout=False, shares={"treat": 1.0})
    assert first["variant"] == again["variant"] == "control"  # the first write wins
    assert again["shares"] == {"control": 1.0} and again["recorded_at"] == first["recorded_at"]


def test_duplicates_are_no_ops_that_say_so(store_url: str) -> None:
    store = EventStore(store_url)
    assert store.add_suggestion(**suggestion(0))
    assert not store.add_suggestion(**{**suggestion(0), "params": {"changed": True}})
    row: dict[str, Any] = {"idempotency_key": "retry-1", "suggestion_id": "s0", "experiment": "genai",
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
        "run_id": "r1",
        "trial_id": "7",
        "status": "completed",
        "params": {},
        "metrics": {"q": 1.0},
    }
    assert store.add_trials([trial, {**trial, "trial_id": "8"}]) == 2
    assert store.add_trials([trial]) == 0
    assert store.add_trials([{**trial, "run_id": "r2"}]) == 1  # another run's trial 7


def test_acknowledged_events_wait_for_the_disk_suggestions_do_not(store_url: str) -> None:
    """Feedback (and every other event) is flushed before the call returns; suggestions,
    leases we hand out, only reach the database (see engine.store.events's docstring)."""
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


def test_concurrent_writers_lose_nothing_and_a_reader_by_seq_misses_nothing(store_url: str) -> None:
    """Engines follow tables by the last seq they read: with four writers racing, a reader
    doing that as they write must still see every row, each once."""
    store = EventStore(store_url)

    def write(worker: int) -> None:
        for i in range(25):
            store.add_suggestion(**suggestion(worker * 100 + i, user=f"u{worker}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    seen: list[str] = []
    last = 0
    while True:
        writing = any(t.is_alive() for t in threads)
        for row in store.suggestions_since("genai", last):
            seen.append(row["suggestion_id"])
            last = row["seq"]
        if not writing:
            break
    rows = list(store.events("suggestions"))
    assert len(rows) == 100 and sorted(seen) == sorted(r["suggestion_id"] for r in rows)


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
    with store.engine.begin() as conn:  # what version 1 wrote: no implicit column, no run_id
        conn.execute(sa.text("ALTER TABLE feedback DROP COLUMN implicit"))
        conn.execute(sa.text("ALTER TABLE feedback DROP COLUMN comment"))
        conn.execute(sa.text("ALTER TABLE trials DROP COLUMN run_id"))
        conn.execute(sa.text("UPDATE frontier_meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(
            sa.text(
                "INSERT INTO feedback (idempotency_key, suggestion_id, experiment, user_id, rating, "
                "recorded_at) VALUES ('old', 's0', 'genai', 'u0', 4, 0)"
            )
        )
    store.close()
    upgraded = EventStore(store_url)
    assert upgraded.feedback_for("s0", "old")["implicit"] is None  # type: ignore[index]
    assert upgraded.add_feedback(
        idempotency_key="new", suggestion_id="s0", experiment="genai", user_id="u0", implicit={"retries": 2.0}
    )
    assert upgraded.feedback_for("s0", "new")["implicit"] == {"retries": 2.0}  # type: ignore[index]
    assert upgraded.add_feedback(
        idempotency_key="said", suggestion_id="s0", experiment="genai", user_id="u0", comment="too dark"
    )
    assert upgraded.feedback_for("s0", "said")["comment"] == "too dark"  # type: ignore[index]
    with upgraded.engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT value FROM frontier_meta WHERE key = 'schema_version'")
        ).scalar()
    assert version == str(SCHEMA_VERSION)


def test_a_version_2_store_is_upgraded_in_place(store_url: str) -> None:
    """Version 2 keyed feedback globally and trials by experiment/trial: both now scoped."""
    store = EventStore(store_url)
    for i in range(2):
        store.add_suggestion(**suggestion(i))
    with store.engine.begin() as conn:  # what version 2 wrote
        conn.execute(sa.text("ALTER TABLE trials DROP COLUMN run_id"))
        conn.execute(sa.text("ALTER TABLE feedback DROP COLUMN comment"))
        conn.execute(sa.text("UPDATE frontier_meta SET value = '2' WHERE key = 'schema_version'"))
        for key, sid in (("req-1", "s0"), ("s1:0123abcd", "s1")):  # a client's key, a content key
            conn.execute(
                sa.text(
                    "INSERT INTO feedback (idempotency_key, suggestion_id, experiment, user_id, rating, "
                    "recorded_at) VALUES (:key, :sid, 'genai', 'u1', 4, 0)"
                ),
                {"key": key, "sid": sid},
            )
        conn.execute(
            sa.text(
                "INSERT INTO trials (idempotency_key, experiment, trial_id, status, params, recorded_at) "
                "VALUES ('genai/0', 'genai', '0', 'completed', '{}', 0)"
            )
        )
    store.close()
    upgraded = EventStore(store_url)
    assert upgraded.feedback_for("s0", "req-1")["rating"] == 4.0  # type: ignore[index]
    assert upgraded.feedback_for("s1", "auto:0123abcd") is not None
    row = {"experiment": "genai", "user_id": "u1", "rating": 2.0}
    assert upgraded.add_feedback(idempotency_key="req-1", suggestion_id="s1", **row)  # was taken
    assert not upgraded.add_feedback(idempotency_key="req-1", suggestion_id="s0", **row)
    (old,) = upgraded.events("trials")
    assert old["run_id"] is None and old["trial_id"] == "0"
    trial = {"experiment": "genai", "trial_id": "0", "status": "completed", "params": {}, "metrics": {}}
    assert upgraded.add_trials([{**trial, "run_id": "new-run"}]) == 1


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


def test_feedback_committed_late_is_learnt_exactly_once(
    store_url: str,
) -> None:
    """A writer draws its seq, then commits after a second writer's later seq: the engine
    must learn both, however late the first commit lands (PostgreSQL's sequences are
    drawn before the commit; SQLite has one writer at a time)."""
    engine = OnlineEngine(EventStore(store_url))
    engine.register(load_spec("configs/genai.yaml"))
    slow, fast = (engine.suggest("genai", user, "portrait") for user in ("slow", "fast"))
    # the first holds its table lock for seconds here: the second waits for it past the
    # default store timeout (which would answer 503, retryable, instead)
    slow_writer, fast_writer = EventStore(store_url, timeout_s=30), EventStore(store_url, timeout_s=30)
    in_commit, release = threading.Event(), threading.Event()

    def hold_first_commit(_conn: object) -> None:
        if not in_commit.is_set():
            in_commit.set()
            release.wait(60)

    sa.event.listen(slow_writer.engine, "commit", hold_first_commit)

    def write(store: EventStore, s: Suggestion) -> None:
        store.add_feedback(
            idempotency_key="k", suggestion_id=s.suggestion_id, experiment="genai",
            user_id=s.user_id, rating=5.0, signal=None, metrics=None,
        )  # fmt: skip

    first = threading.Thread(target=write, args=(slow_writer, slow))
    first.start()
    assert in_commit.wait(60)
    second = threading.Thread(target=write, args=(fast_writer, fast))
    second.start()
    second.join(timeout=2)  # it may wait for the first writer: that is allowed
    engine.sync()
    release.set()
    first.join()
    second.join()
    engine.sync()
    rebuilt = OnlineEngine(EventStore(store_url))
    for user in ("slow", "fast"):
        assert engine.profile("genai", user)["samples"] == 1
        assert engine.profile("genai", user) == rebuilt.profile("genai", user)
    assert engine._experiments["genai"].model.context("portrait").count == 2  # each once


def test_a_row_no_model_can_take_is_skipped_and_the_rest_learnt(store_url: str) -> None:
    engine = OnlineEngine(EventStore(store_url))
    engine.register(load_spec("configs/genai.yaml"))
    store = engine.store
    store.add_suggestion(**{**suggestion(0, user="mallory"), "params": {"provider": "no-such-provider"}})
    good = engine.suggest("genai", "eve", "portrait")
    for sid, user in (("s0", "mallory"), (good.suggestion_id, "eve")):
        store.add_feedback(idempotency_key="k", suggestion_id=sid, experiment="genai", user_id=user, rating=5)
    engine.sync()  # logs the bad row, learns the good one
    assert engine.profile("genai", "eve")["samples"] == 1
    assert OnlineEngine(EventStore(store_url)).profile("genai", "eve")["samples"] == 1


def test_forget_anonymise_and_count(store_url: str) -> None:
    """Deleting a user's rows, anonymising old ones and aggregate counters, on both backends."""
    store = EventStore(store_url)
    for i, user in enumerate(["u1", "u1", "u2"]):
        store.add_suggestion(**suggestion(i, user))
        store.add_feedback(idempotency_key=f"k{i}", suggestion_id=f"s{i}", experiment="genai",
                           user_id=user, rating=3.0, signal=None, metrics=None)  # fmt: skip
    store.add_preferences(idempotency_key="p", experiment="genai", user_id="u1", weights={"quality": 1.0})
    assert store.forget("genai", "u1") == {
        "feedback": 2,
        "suggestions": 2,
        "assignments": 0,
        "preferences": 1,
    }
    assert store.forget("genai", "u1") == {
        "feedback": 0,
        "suggestions": 0,
        "assignments": 0,
        "preferences": 0,
    }
    assert not store.seen("genai", "u1") and store.seen("genai", "u2")
    (tombstone,) = store.since("tombstones", "genai", 0)
    assert tombstone["mode"] == "deleted" and "u1" not in str(tombstone)
    assert store.anonymise_before("genai", cutoff=0.0) == {"suggestions": 0, "feedback": 0, "assignments": 0}
    changed = store.anonymise_before("genai", cutoff=1e12)
    assert changed == {"suggestions": 1, "feedback": 1, "assignments": 0}
    (row,) = store.feedback_since("genai", 0)
    assert row["user_id"] == row["suggestion_id"] and row["user_id"].startswith("anon-")
    assert row["params"] == suggestion(2)["params"]  # still joined to its suggestion
    assert store.feedback_for(row["suggestion_id"], "k2") is not None  # its key moved with it
    assert store.anonymise_before("genai", cutoff=1e12) == {"suggestions": 0, "feedback": 0, "assignments": 0}
    for _ in range(3):
        store.count("genai", "opted_out_suggestions", "2026-12-01")
    store.count("genai", "opted_out_suggestions", "2026-12-02")
    store.count("genai", "opted_out_feedback", "2026-12-02")
    assert store.counts("genai") == {"opted_out_suggestions": 4, "opted_out_feedback": 1}
