"""Model versions, retraining judged on held-out feedback, and the schedule that runs it, in
process over SQLite stores (over HTTP: tests/integration/test_lifecycle_http.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engine.experiments import VariantError, VariantSpec
from engine.experiments.schedule import LEASE_S, Schedule
from engine.online import Feedback, OnlineEngine
from engine.online.lifecycle import EXPORT_FORMAT
from engine.online.protocol import UnknownUser
from engine.online.retrain import priors_of
from engine.online.service import OPTED_OUT
from engine.sim import simulated_users
from engine.spec import ExperimentSpec, load_spec
from engine.store import ANONYMOUS, EventStore

SPEC = load_spec("configs/genai.yaml")
HOUR = 3600.0


def with_lifecycle(**lifecycle: object) -> ExperimentSpec:
    return ExperimentSpec.model_validate({**SPEC.model_dump(mode="json"), "lifecycle": lifecycle})


@pytest.fixture(scope="module")
def rated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 ratings of 20 simulated users (their taste known to the simulator), made once."""
    path = tmp_path_factory.mktemp("rated") / "store.db"
    engine = OnlineEngine(EventStore(f"sqlite:///{path}"))
    engine.register(SPEC)
    people = simulated_users(SPEC, 20, seed=3)
    for _ in range(12):
        for person in people:
            s = engine.suggest(SPEC.name, person.user_id, "portrait")
            engine.feedback(s.suggestion_id, Feedback(rating=person.rate(s.params, "portrait")))
    engine.store.close()
    return path


@pytest.fixture
def engine(rated_store: Path, tmp_path: Path) -> OnlineEngine:
    shutil.copy(rated_store, tmp_path / "store.db")
    return OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"))


def created_at(engine: OnlineEngine) -> float:
    stored = engine.store.experiment(SPEC.name)
    assert stored is not None
    return float(stored["recorded_at"])


def models_rows(engine: OnlineEngine) -> int:
    return len(engine.store.since("models", SPEC.name, 0))


def test_a_retrain_that_does_not_beat_the_active_model_stays_a_draft(engine: OnlineEngine) -> None:
    """Overconfident constants (rating noise 0.02 in reward units) lose on held-out feedback:
    the version is written as a draft with the scores that decided, and nothing changes."""
    result = engine.retrain(SPEC.name, days=1, priors={"noise": 0.02})
    assert result["status"] == "draft"
    version = result["version"]
    assert version["version"] == "1.1.0" and version["parent"] == "1.0.0"
    scores = version["metrics"]
    assert scores["candidate"]["held_out_loglik"] < scores["active"]["held_out_loglik"]
    assert scores["candidate"]["n_held_out"] == 48  # the last 20% of 240 ratings
    assert "does not beat" in version["reason"]
    listing = engine.versions(SPEC.name)
    assert listing["active"] == "1.0.0"
    assert {v["version"]: v["status"] for v in listing["versions"]} == {"1.0.0": "active", "1.1.0": "draft"}
    assert engine._experiment(SPEC.name).model.priors == priors_of({})  # still the defaults


def test_a_retrain_from_a_miscalibrated_model_is_activated_and_served(engine: OnlineEngine) -> None:
    """From an imported version whose constants are far off (noise 0.02, users' amplitude
    4), the fit finds constants that beat it on held-out feedback; they are activated, and
    every engine over the store serves from them."""
    bad = {"noise": 0.02, "user_amplitude": 4.0}
    document = {"format": EXPORT_FORMAT, "experiment": "elsewhere", "version": "3.1.0", "priors": bad}
    imported = engine.import_version(SPEC.name, document)
    assert imported["version"] == "2.0.0" and imported["status"] == "draft"
    engine.activate(SPEC.name, "2.0.0", "as a test")
    other = OnlineEngine(EventStore(engine.store.url), peer_sync_s=0.0)
    assert other._experiment(SPEC.name).model.priors == priors_of(bad)
    result = engine.retrain(SPEC.name, days=1)
    assert result["status"] == "activated", result["version"]["reason"]
    version = result["version"]
    assert version["version"] == "2.1.0" and version["parent"] == "2.0.0"
    scores = version["metrics"]
    assert scores["candidate"]["held_out_loglik"] > scores["active"]["held_out_loglik"]
    fitted = priors_of(version["priors"])
    assert fitted != priors_of(bad)
    for serving in (engine, other):
        assert serving._experiment(SPEC.name).model.priors == fitted  # the other read the event
    assert result["event"]["previous"] == "2.0.0" and result["event"]["version"] == "2.1.0"
    assert result["event"]["by"] == "retrain"


def test_activate_any_version_and_roll_back_with_an_exact_history(engine: OnlineEngine) -> None:
    engine.retrain(SPEC.name, days=1, priors={"noise": 0.02})  # 1.1.0, a draft
    engine.retrain(SPEC.name, days=1, priors={"lengthscale": 0.4})  # 1.2.0, whichever way
    active = engine.versions(SPEC.name)["active"]
    engine.activate(SPEC.name, "1.1.0", "try it")
    assert engine._experiment(SPEC.name).model.priors == priors_of({"noise": 0.02})
    engine.activate(SPEC.name, active, "roll back")
    events = engine.versions(SPEC.name)["events"]
    activations = [(e["version"], e["previous"], e["reason"]) for e in events if e["change"] == "activated"]
    assert activations[-2:] == [("1.1.0", active, "try it"), (active, "1.1.0", "roll back")]
    assert [e["version"] for e in events if e["change"] == "created"] == ["1.1.0", "1.2.0"]
    statuses = {v["version"]: v["status"] for v in engine.versions(SPEC.name)["versions"]}
    assert statuses["1.1.0"] == "retired" and statuses[active] == "active"
    replayed = OnlineEngine(EventStore(engine.store.url)).versions(SPEC.name)
    assert replayed == engine.versions(SPEC.name)  # the history is the log, whoever folds it


def test_bad_version_requests_are_refused_and_write_nothing(engine: OnlineEngine) -> None:
    engine.versions(SPEC.name)
    cases = [
        (lambda: engine.activate(SPEC.name, "9.9.9"), 404),
        (lambda: engine.activate(SPEC.name, "1.0.0"), 409),  # already active
        (lambda: engine.activate(SPEC.name, "latest"), 422),
        (lambda: engine.import_version(SPEC.name, {"priors": {}}), 422),
        (lambda: engine.import_version(SPEC.name, {"format": EXPORT_FORMAT, "priors": {"noise": -1}}), 422),
        (lambda: engine.import_version(SPEC.name, {"format": EXPORT_FORMAT, "priors": {"seed": 1}}), 422),
        (lambda: engine.retrain(SPEC.name, days=0), 422),
        (lambda: engine.retrain(SPEC.name, days=1, priors={"noise": "high"}), 422),
    ]
    for call, status in cases:
        with pytest.raises(VariantError) as raised:
            call()
        assert raised.value.status == status
    assert models_rows(engine) == 0
    assert engine.store.since("jobs", SPEC.name, 0) == []


def test_too_little_feedback_is_skipped_with_the_reason(tmp_path: Path) -> None:
    engine = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'empty.db'}"))
    engine.register(SPEC)
    result = engine.retrain(SPEC.name)
    assert result["status"] == "skipped" and "needs at least 50" in result["reason"]
    assert models_rows(engine) == 0


def test_export_and_import_round_trip(engine: OnlineEngine, tmp_path: Path) -> None:
    """A version exports as JSON plus its fitted feedback as Parquet (users pseudonymised);
    imported into another experiment it keeps its constants, as a new major version."""
    version = engine.retrain(SPEC.name, days=1, priors={"lengthscale": 0.4})["version"]
    document, table = engine.export_version(SPEC.name, version["version"])
    assert document["format"] == EXPORT_FORMAT and document["priors"] == {"lengthscale": 0.4}
    assert len(table) == document["rows"] == version["metrics"]["candidate"]["n_fit"] == 192
    table.to_parquet(tmp_path / "model.parquet")
    read = pd.read_parquet(tmp_path / "model.parquet")
    assert read["seq"].max() == version["fitted_seq"]
    assert not set(read["user"]) & {f"user-{i}" for i in range(100)}  # no user id leaves
    other = ExperimentSpec.model_validate({**SPEC.model_dump(mode="json"), "name": "genai-copy"})
    engine.register(other)
    imported = engine.import_version("genai-copy", document)
    assert imported["version"] == "2.0.0" and imported["priors"] == {"lengthscale": 0.4}
    assert "imported from genai@1.1.0" in imported["reason"]


def test_one_scheduled_run_per_period_across_replicas_and_a_restart(tmp_path: Path) -> None:
    """A daily schedule on a fake clock over 3 days: two engines tick every hour, one is
    replaced by a new one half way; each day's run happens exactly once."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    spec = with_lifecycle(schedule="daily")
    first, second = OnlineEngine(EventStore(url)), OnlineEngine(EventStore(url))
    first.register(spec)
    start = created_at(first)
    led: Counter[str] = Counter()
    for hour in range(72):
        if hour == 36:
            second = OnlineEngine(EventStore(url))  # a restart: nothing in memory
        for name, engine in (("first", first), ("second", second)):
            led[name] += len(engine.tick(now=start + hour * HOUR))
    runs = first.schedule(SPEC.name, now=start + 72 * HOUR)["runs"]
    assert len(runs) == 3 == sum(led.values())
    assert len({r["period"] for r in runs}) == 3 and all(r["period"].endswith("03:00:00+00:00") for r in runs)
    assert all(r["status"] == "finished" and r["result"]["status"] == "skipped" for r in runs)


def test_a_run_whose_leader_died_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    spec = with_lifecycle(schedule="daily")
    engine = OnlineEngine(EventStore(url))
    engine.register(spec)
    created = created_at(engine)
    fire = Schedule(engine.store, spec, created).next_run(created)
    assert fire is not None
    dead = Schedule(engine.store, spec, created).claim(now=fire + 1)  # its replica dies here
    assert dead is not None
    assert engine.tick(now=fire + 60) == []  # the lease holds
    assert engine.schedule(SPEC.name, now=fire + 60)["runs"][0]["status"] == "running"
    assert len(engine.tick(now=fire + LEASE_S + 60)) == 1  # taken over
    assert engine.tick(now=fire + LEASE_S + 120) == []  # and done: once
    runs = engine.schedule(SPEC.name, now=fire + LEASE_S + 120)["runs"]
    assert [r["status"] for r in runs] == ["finished", "abandoned"]
    assert runs[0]["period"] == runs[1]["period"]


def test_schedules_parse_with_croniter_and_bad_ones_are_refused() -> None:
    assert with_lifecycle(schedule="weekly").lifecycle.cron() == "0 3 * * 1"
    assert with_lifecycle(schedule="15 2 * * 0").lifecycle.cron() == "15 2 * * 0"
    for bad in ("often", "61 * * * *", "* * *"):
        with pytest.raises(ValueError, match="cron expression"):
            with_lifecycle(schedule=bad)


def snapshot(source: Path, copy: Path) -> None:
    """A copy of a SQLite store with what its write-ahead log holds (sqlite3's backup)."""
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)


def user_rows(store: EventStore, user_id: str) -> dict[str, int]:
    tables = ("feedback", "suggestions", "assignments", "preferences")
    return {t: len(list(store.events(t, experiment=SPEC.name, user_id=user_id))) for t in tables}


def test_deleting_a_user_forgets_them_everywhere(engine: OnlineEngine, tmp_path: Path) -> None:
    """Their events are gone, their profile answers 404 on every replica, and the others'
    profiles and suggestions equal those of a fresh replay of the store without them."""
    url = engine.store.url
    replica = OnlineEngine(EventStore(url), peer_sync_s=0.0)  # another replica, the user warm in it
    victim, others = "user-3", [f"user-{i}" for i in range(20) if i != 3]
    engine.set_preferences(SPEC.name, victim, {"quality": 1.0, "speed": 1.0})
    replica.suggest(SPEC.name, victim, "portrait")
    assert user_rows(engine.store, victim)["feedback"] == 12
    deleted = engine.forget(SPEC.name, victim)["deleted"]
    assert deleted["feedback"] == 12 and deleted["suggestions"] == 13 and deleted["preferences"] == 1
    assert user_rows(engine.store, victim) == dict.fromkeys(deleted, 0)
    (tombstone,) = engine.store.since("tombstones", SPEC.name, 0)
    assert tombstone["mode"] == "deleted" and victim not in str(tombstone)
    snapshot(tmp_path / "store.db", tmp_path / "replay.db")
    fresh = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'replay.db'}"))
    for serving in (engine, replica, fresh):
        with pytest.raises(UnknownUser):
            serving.profile(SPEC.name, victim)
    expected = {u: fresh.profile(SPEC.name, u) for u in others}
    for serving in (engine, replica):
        assert {u: serving.profile(SPEC.name, u) for u in others} == expected
    # suggestions (each engine draws its own random numbers from the same seeds): the
    # replica that deleted against a fresh engine on a copy of the store after the deletion
    snapshot(tmp_path / "replay.db", tmp_path / "replay2.db")
    fresh2 = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'replay2.db'}"))
    engine_rebuilt = OnlineEngine(EventStore(url))
    mine = [engine_rebuilt.suggest(SPEC.name, u, "portrait").params for u in others]
    assert mine == [fresh2.suggest(SPEC.name, u, "portrait").params for u in others]
    with pytest.raises(UnknownUser):
        engine.forget(SPEC.name, victim)  # nothing left: 404, and no second tombstone
    assert len(engine.store.since("tombstones", SPEC.name, 0)) == 1


def test_retention_anonymises_old_events_and_the_population_keeps_them(engine: OnlineEngine) -> None:
    spec = with_lifecycle(retention_days=1)
    with engine.store.engine.begin() as conn:  # the stored spec gains a retention setting
        conn.execute(
            sa.text("UPDATE experiments SET spec = :spec WHERE name = :name"),
            {"spec": json.dumps(spec.model_dump(mode="json")), "name": SPEC.name},
        )
    learnt_before = OnlineEngine(EventStore(engine.store.url)).profile(SPEC.name, "user-0")["samples"]
    assert learnt_before == 12
    assert engine.apply_retention(now=time.time()) == {}  # nothing is a day old yet
    changed = engine.apply_retention(now=time.time() + 2 * 86_400)[SPEC.name]
    assert changed["feedback"] == 240 and changed["suggestions"] == 240
    names = {r["user_id"] for t in ("feedback", "suggestions", "assignments") for r in engine.store.events(t)}
    assert all(n.startswith(ANONYMOUS) for n in names)
    with pytest.raises(UnknownUser):
        engine.profile(SPEC.name, "user-0")
    exp = engine._experiment(SPEC.name)
    assert len(exp.learnt["", "portrait"][0]) == 240  # the population still learns every rating
    assert engine.apply_retention(now=time.time() + 3 * 86_400) == {}  # once
    (tombstone,) = engine.store.since("tombstones", SPEC.name, 0)
    assert tombstone["mode"] == "anonymised"


def test_an_opted_out_user_gets_the_defaults_and_leaves_only_counts(engine: OnlineEngine) -> None:
    before = {t: len(list(engine.store.events(t))) for t in ("suggestions", "feedback", "assignments")}
    s = engine.suggest(SPEC.name, "private", "portrait", opt_out=True)
    assert s.suggestion_id.startswith(OPTED_OUT) and s.variant == "default"
    newcomer = engine.profile(SPEC.name, engine.suggest(SPEC.name, "newcomer", "portrait").user_id)
    assert s.params == newcomer["contexts"]["portrait"]["preferred"]  # what a new user is expected to like
    result = engine.feedback(s.suggestion_id, Feedback(rating=5), experiment=SPEC.name)
    assert result.status == "recorded" and not result.learnt and "opted out" in (result.reason or "")
    after = {t: len(list(engine.store.events(t))) for t in ("suggestions", "feedback", "assignments")}
    assert after == {**before, "suggestions": before["suggestions"] + 1, "assignments": after["assignments"]}
    assert user_rows(engine.store, "private") == dict.fromkeys(user_rows(engine.store, "private"), 0)
    assert engine.store.counts(SPEC.name) == {"opted_out_suggestions": 1, "opted_out_feedback": 1}


def test_a_scheduled_run_also_derives_an_evolution_candidate(tmp_path: Path) -> None:
    data = with_lifecycle(schedule="daily").model_dump(mode="json")
    spec = ExperimentSpec.model_validate({**data, "ab": {**data["ab"], "evolution": {"enabled": True}}})
    engine = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"))
    engine.register(spec)
    plain, vivid = "a photo of {subject}, natural light", "a photo of {subject}, vivid colors"
    for name, template in (("plain", plain), ("vivid", vivid)):
        variant = VariantSpec(name=name, control=name == "plain", payload={"template": template})
        engine.create_variant(SPEC.name, variant)
    fire = Schedule(engine.store, spec, created_at(engine)).next_run(created_at(engine))
    assert fire is not None
    (result,) = engine.tick(now=fire + 60)
    assert result["status"] == "skipped" and result["evolution"] == "evolved-1"  # no ratings yet: no retrain
    evolved = {v.name: v for v in engine.variants(SPEC.name)}["evolved-1"]
    assert evolved.payload["template"] == f"{plain}, vivid colors"  # unrated: the variants in order
