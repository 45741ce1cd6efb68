"""The suggestion protocol in process, on a SQLite store (PostgreSQL: tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from engine.online import (
    ConflictingFeedback,
    ContextClusters,
    ExpiredSuggestion,
    Feedback,
    FeedbackResult,
    InvalidRequest,
    OnlineEngine,
    UnknownExperiment,
    UnknownSuggestion,
)
from engine.spec import ExperimentSpec, load_spec
from engine.store import EventStore
from objectives.users import population

SPEC = load_spec("configs/genai.yaml")


@pytest.fixture
def engine(tmp_path: Path) -> OnlineEngine:
    e = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"), lease_s=60, grace_s=60)
    assert e.register(SPEC)
    assert not e.register(SPEC)
    return e


def counts(engine: OnlineEngine) -> tuple[int, int]:
    return len(list(engine.store.events("suggestions"))), len(list(engine.store.events("feedback")))


def status(result: FeedbackResult) -> str:
    return result.status


def test_suggest_feedback_duplicate_and_errors(engine: OnlineEngine) -> None:
    s = engine.suggest("genai", "alice", "portrait", now=1000.0)
    assert SPEC.search_space().contains(s.params) and s.expires_at == 1060.0
    assert status(engine.feedback(s.suggestion_id, Feedback(rating=4), "k1", now=1001.0)) == "recorded"
    assert status(engine.feedback(s.suggestion_id, Feedback(rating=4), "k1", now=1002.0)) == "duplicate"
    with pytest.raises(ConflictingFeedback, match=r"'k1'.*other feedback"):
        engine.feedback(s.suggestion_id, Feedback(rating=2), "k1", now=1003.0)
    assert status(engine.feedback(s.suggestion_id, Feedback(signal="like"), now=1004.0)) == "recorded"
    assert status(engine.feedback(s.suggestion_id, Feedback(signal="like"), now=1005.0)) == "duplicate"
    assert counts(engine) == (1, 2)
    with pytest.raises(UnknownSuggestion):
        engine.feedback("nope", Feedback(rating=3))
    with pytest.raises(ExpiredSuggestion):
        engine.feedback(s.suggestion_id, Feedback(rating=3), "late", now=1000.0 + 60 + 61)
    # a retry of an acknowledged key stays a no-op even after the window
    assert status(engine.feedback(s.suggestion_id, Feedback(rating=4), "k1", now=5000.0)) == "duplicate"
    assert counts(engine) == (1, 2)


def test_idempotency_keys_are_scoped_to_their_suggestion(engine: OnlineEngine) -> None:
    """Two users' clients both send the README's "req-1": both ratings are learnt."""
    ann = engine.suggest("genai", "ann", "portrait", now=1000.0)
    ben = engine.suggest("genai", "ben", "portrait", now=1000.0)
    assert status(engine.feedback(ann.suggestion_id, Feedback(rating=5), "req-1", now=1001.0)) == "recorded"
    assert status(engine.feedback(ben.suggestion_id, Feedback(rating=2), "req-1", now=1001.0)) == "recorded"
    assert engine.profile("genai", "ann")["samples"] == engine.profile("genai", "ben")["samples"] == 1
    # past the grace window, another suggestion's key is no excuse: the late one is refused
    late = engine.suggest("genai", "ann", "portrait", now=1000.0)
    with pytest.raises(ExpiredSuggestion):
        engine.feedback(late.suggestion_id, Feedback(rating=5), "req-1", now=1000.0 + 60 + 61)
    # a rebuilt engine sees the same: both ratings, once each
    restarted = OnlineEngine(EventStore(engine.store.url))
    assert restarted.profile("genai", "ben")["samples"] == 1


def test_measured_metrics_are_the_specs_and_learnt_where_a_weight_applies(engine: OnlineEngine) -> None:
    s = engine.suggest("genai", "mo", "portrait")
    with pytest.raises(InvalidRequest, match=r"latency_ms.*\['quality', 'speed', 'cost'\]"):
        engine.feedback(s.suggestion_id, Feedback(metrics={"latency_ms": 100.0}))
    # genai weighs quality only: metrics-only feedback is stored, not learnt, and says why
    result = engine.feedback(s.suggestion_id, Feedback(metrics={"speed": 900.0}))
    assert (result.status, result.learnt) == ("recorded", False)
    assert "speed" in (result.reason or "") and "preferences" in (result.reason or "")
    assert counts(engine) == (1, 1) and engine.profile("genai", "mo")["samples"] == 0
    # a user who weighs speed: the same kind of feedback is learnt, faster is better
    engine.set_preferences("genai", "mo", {"speed": 1.0})
    for latency in (300.0, 300.0, 9000.0):
        s = engine.suggest("genai", "mo", "portrait")
        result = engine.feedback(s.suggestion_id, Feedback(metrics={"speed": latency}))
        assert result.learnt and result.reason is None
    assert engine.profile("genai", "mo")["samples"] == 4  # the first one re-scored too


def test_bad_input_changes_nothing(engine: OnlineEngine) -> None:
    s = engine.suggest("genai", "bob")
    before = counts(engine)
    with pytest.raises(UnknownExperiment):
        engine.suggest("nope", "bob")
    with pytest.raises(InvalidRequest, match="limit"):
        engine.suggest("genai", "x" * 10_000_000)
    with pytest.raises(InvalidRequest):
        engine.suggest("genai", "")
    for bad in ({"rating": 0}, {"rating": 6}, {"metrics": {"latency_ms": float("nan")}}):
        with pytest.raises(ValidationError):
            engine.feedback(s.suggestion_id, Feedback.model_validate(bad))
    with pytest.raises(InvalidRequest):
        engine.feedback(s.suggestion_id, Feedback(rating=3), idempotency_key="k" * 300)
    assert counts(engine) == before


def test_state_rebuilt_from_the_store_equals_the_live_state(engine: OnlineEngine, tmp_path: Path) -> None:
    users = population(6, seed=5)
    for _ in range(4):
        for u in users:
            s = engine.suggest("genai", u.user_id, "portrait")
            engine.feedback(s.suggestion_id, Feedback(rating=u.rate(s.params, "portrait")))
    open_one = engine.suggest("genai", users[0].user_id, "portrait")
    live = {u.user_id: engine.profile("genai", u.user_id) for u in users}
    # a new process on the same store, keeping one user in memory at a time
    restarted = OnlineEngine(EventStore(engine.store.url), lease_s=60, grace_s=60, max_users=1)
    for u in users:
        assert restarted.profile("genai", u.user_id) == live[u.user_id]
    # the unanswered suggestion is pending again after the rebuild: the next one differs
    nxt = restarted.suggest("genai", users[0].user_id, "portrait")
    assert nxt.params != open_one.params
    assert status(restarted.feedback(open_one.suggestion_id, Feedback(rating=5))) == "recorded"
    assert restarted.profile("genai", users[0].user_id)["samples"] == 5


def test_feature_contexts_are_clustered_and_replayed(engine: OnlineEngine) -> None:
    photo, logo = [1887.0, 0.18, 7.5, 128.0, 128.0], [195.0, 0.02, 2.1, 128.0, 128.0]
    a = engine.suggest("genai", "dave", photo)
    b = engine.suggest("genai", "dave", [v * 1.01 for v in photo])
    c = engine.suggest("genai", "dave", logo)
    assert a.context == b.context != c.context
    engine.feedback(a.suggestion_id, Feedback(rating=5))
    restarted = OnlineEngine(EventStore(engine.store.url))
    assert restarted.suggest("genai", "erin", photo).context == a.context
    assert set(restarted.profile("genai", "dave")["contexts"]) == {a.context}
    with pytest.raises(InvalidRequest, match="features"):
        engine.suggest("genai", "dave", [1.0, float("nan"), 2.0, 3.0, 4.0])


def test_implicit_signals_are_stored_and_learnt(engine: OnlineEngine) -> None:
    s = engine.suggest("genai", "gina", "portrait")
    ack = engine.feedback(s.suggestion_id, Feedback(time_to_accept_s=2.5, retries=1), "k")
    assert ack.status == "recorded" and ack.learnt
    stored = engine.store.feedback_for(s.suggestion_id, "k")
    assert stored is not None and stored["implicit"] == {"time_to_accept_s": 2.5, "retries": 1.0}
    assert engine.profile("genai", "gina")["samples"] == 1
    restarted = OnlineEngine(EventStore(engine.store.url))
    assert restarted.profile("genai", "gina") == engine.profile("genai", "gina")


def test_preference_weights_per_user_rescore_their_feedback(engine: OnlineEngine) -> None:
    assert engine.set_preferences("genai", "speedy", {"speed": 1.0}) == {
        "quality": 0.0,
        "speed": 1.0,
        "cost": 0.0,
    }
    for user in ("speedy", "default"):  # the same middling, fast outcomes for both
        for _ in range(3):
            s = engine.suggest("genai", user, "portrait")
            engine.feedback(s.suggestion_id, Feedback(rating=3, metrics={"speed": 500.0}))
    speedy, default = engine.profile("genai", "speedy"), engine.profile("genai", "default")
    assert speedy["weights"]["speed"] == 1.0 and default["weights"] == SPEC.weights()
    fast = speedy["contexts"]["portrait"]["expected_reward"]
    assert fast > default["contexts"]["portrait"]["expected_reward"] + 0.3
    restarted = OnlineEngine(EventStore(engine.store.url))
    assert restarted.profile("genai", "speedy") == speedy
    for bad in ({"beauty": 1.0}, {"speed": -1.0}, {"speed": 0.0}, {"speed": float("nan")}):
        with pytest.raises(InvalidRequest, match="weights"):
            engine.set_preferences("genai", "speedy", bad)
    with pytest.raises(UnknownExperiment):
        engine.set_preferences("nope", "speedy", {"speed": 1.0})


def test_engines_sharing_a_store_serve_one_consistent_state(engine: OnlineEngine) -> None:
    """Serve replicas each run an engine over the one store: whichever engine a request
    reaches, it answers from every engine's acknowledged feedback and preferences."""
    other = OnlineEngine(EventStore(engine.store.url), lease_s=60, grace_s=60, peer_sync_s=0.0)
    users = population(3, seed=7)
    for round_ in range(4):
        for i, u in enumerate(users):
            here, there = (engine, other) if (i + round_) % 2 else (other, engine)
            s = here.suggest("genai", u.user_id, "portrait")
            # feedback may reach the other engine (no affinity): it still finds the suggestion
            there.feedback(s.suggestion_id, Feedback(rating=u.rate(s.params, "portrait")))
            assert engine.profile("genai", u.user_id) == other.profile("genai", u.user_id)
    # both agree with a fresh rebuild from the store
    rebuilt = OnlineEngine(EventStore(engine.store.url))
    for u in users:
        assert other.profile("genai", u.user_id) == rebuilt.profile("genai", u.user_id)
        assert other.profile("genai", u.user_id)["samples"] == 4
    # preferences set through one engine re-score the user in the other, cached or not
    before = other.profile("genai", users[0].user_id)
    engine.set_preferences("genai", users[0].user_id, {"cost": 1.0})
    after = other.profile("genai", users[0].user_id)
    assert after["weights"]["cost"] == 1.0 and after != before
    assert after == engine.profile("genai", users[0].user_id)


def test_a_suggestion_computed_ahead_is_served_only_while_its_state_holds(engine: OnlineEngine) -> None:
    """Serve replicas compute a rated user's next suggestion after answering; it must be
    what `suggest` would compute then, and never served once the user's state moved."""
    first = engine.suggest("genai", "kim", "portrait")
    engine.feedback(first.suggestion_id, Feedback(rating=4), learn=False)
    engine.sync(ahead=True)
    user = engine._experiments["genai"].users["kim"]
    ahead = user.ahead["portrait"][1]
    served = engine.suggest("genai", "kim", "portrait", sync=False)
    assert served.params == ahead and not user.ahead  # used once
    engine.feedback(served.suggestion_id, Feedback(rating=2), learn=False)
    engine.sync(ahead=True)
    stale = user.ahead["portrait"][1]
    # another engine takes a rating from kim: kim's history grows
    other = OnlineEngine(EventStore(engine.store.url), lease_s=60, grace_s=60)
    pending = other.suggest("genai", "kim", "portrait")
    other.feedback(pending.suggestion_id, Feedback(rating=5))
    engine.sync()  # learnt here: portrait's state moved on
    assert engine.suggest("genai", "kim", "portrait", sync=False).params != stale
    assert engine.profile("genai", "kim")["contexts"]["portrait"]["samples"] == 3


def test_a_suggest_without_sync_still_sees_this_engines_own_feedback(engine: OnlineEngine) -> None:
    """Under load a replica may take a user's next suggest before its after-response sync."""
    s = engine.suggest("genai", "lee", "portrait")
    engine.feedback(s.suggestion_id, Feedback(rating=5), learn=False)
    engine.suggest("genai", "lee", "portrait", sync=False)
    assert len(engine._experiments["genai"].users["lee"].history("portrait")) == 1


def bounded_spec(**contexts: Any) -> ExperimentSpec:
    data = SPEC.model_dump(mode="json")
    data["name"] = "bounded"
    data["contexts"] = {**data["contexts"], **contexts}
    return ExperimentSpec.model_validate(data)


def test_contexts_are_bounded_and_every_engine_agrees_which(engine: OnlineEngine) -> None:
    engine.register(bounded_spec(labels=["portrait"], max=3))
    served = [engine.suggest("bounded", "zoe", label).context for label in ("a", "b", "c", "portrait", "a")]
    assert served == ["a", "b", None, "portrait", "a"]  # "c" is one too many: the default context
    (stored,) = [r["context"] for r in engine.store.events("suggestions") if r["context"] == {
        "label": None, "requested": "c"}]  # fmt: skip
    assert stored == {"label": None, "requested": "c"}
    other = OnlineEngine(EventStore(engine.store.url))
    assert [other.suggest("bounded", "yan", label).context for label in ("c", "b")] == [None, "b"]
    engine.register(bounded_spec(max=1, overflow="reject").model_copy(update={"name": "strict"}))
    assert engine.suggest("strict", "zoe", "a").context == "a"
    with pytest.raises(InvalidRequest, match=r"contexts\.max"):
        engine.suggest("strict", "zoe", "b")


def test_random_labels_do_not_grow_memory_without_bound(tmp_path: Path) -> None:
    """A client sending 3,000 made-up contexts (each rated) costs a bounded amount of
    memory: at most contexts.max contexts, at most max_context_models models of them."""
    # in memory: the fsyncs of 3,000 ratings on a disk would take a minute
    engine = OnlineEngine(EventStore(f"sqlite:///{fast_dir(tmp_path) / 'store.db'}"), max_context_models=16)
    engine.register(bounded_spec(max=100))
    engine.suggest("bounded", "warm-up", "portrait")
    before = rss_mb()
    rng = np.random.default_rng(0)
    for i in range(3_000):
        s = engine.suggest("bounded", f"user-{i % 50}", f"label-{rng.integers(1 << 60):x}")
        engine.feedback(s.suggestion_id, Feedback(rating=int(rng.integers(1, 6))), learn=i % 100 == 0)
    engine.sync()
    exp = engine._experiments["bounded"]
    assert len(exp.contexts.admitted) == 100 and len(exp.model.contexts) <= 16
    assert rss_mb() - before < 200
    held = engine.memory()["bounded"]  # what the Serve replicas export as metrics
    assert held["contexts"] == 100 and held["context_models"] == len(exp.model.contexts)
    assert held["context_models_evicted"] >= 100 - 16 and held["users"] == 51


def test_memory_counts_what_is_held_and_what_was_dropped_across_rebuilds(engine: OnlineEngine) -> None:
    engine.max_users = 2
    for user in "abcd":
        engine.suggest("genai", user, "portrait")
    assert engine.memory()["genai"] == {
        "users": 2, "users_evicted": 2, "contexts": 1, "context_models": 0, "context_models_evicted": 0,
    }  # fmt: skip
    engine.forget("genai", "a")  # the state is rebuilt from the store: the counts carry on
    engine.suggest("genai", "e", "portrait")
    assert engine.memory()["genai"]["users"] == 1 and engine.memory()["genai"]["users_evicted"] == 2


def fast_dir(tmp_path: Path) -> Path:
    """A folder in RAM when there is one (Linux's /dev/shm), else `tmp_path`."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return tmp_path
    path = shm / f"frontier-test-{os.getpid()}-{tmp_path.name}"
    path.mkdir(exist_ok=True)
    return path


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_context_models_beyond_the_bound_are_rebuilt_from_the_store(tmp_path: Path) -> None:
    small = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"), max_context_models=2)
    small.register(SPEC)
    people = population(4, seed=3)
    for _ in range(3):
        for u in people:
            for label in ("portrait", "landscape", "logo"):
                s = small.suggest("genai", u.user_id, label)
                small.feedback(s.suggestion_id, Feedback(rating=u.rate(s.params, "portrait")))
                assert len(small._experiments["genai"].model.contexts) <= 2
    model = small._experiments["genai"].model
    dropped = next(label for label in ("portrait", "landscape", "logo") if model.evicted(label))
    small.suggest("genai", people[0].user_id, dropped)  # rebuilt from the store to answer
    whole = OnlineEngine(EventStore(small.store.url))  # no bound: never dropped
    whole.profile("genai", people[0].user_id)
    rebuilt, kept = model.context(dropped), whole._experiments["genai"].model.context(dropped)
    assert rebuilt.count == kept.count == 12
    np.testing.assert_allclose(rebuilt.weights(), kept.weights(), rtol=1e-9, atol=1e-12)


def test_feature_contexts_have_the_declared_length(engine: OnlineEngine) -> None:
    with pytest.raises(InvalidRequest, match=r"4 values.*takes 5"):
        engine.suggest("genai", "ivy", [1.0, 2.0, 3.0, 4.0])
    # a spec without contexts.features (one stored before the field) takes the objective's
    engine.register(bounded_spec(features=None))
    assert engine.suggest("bounded", "ivy", [1887.0, 0.18, 7.5, 128.0, 128.0]).context
    labels_only = bounded_spec(features=None).model_dump(mode="json")
    labels_only.update(name="labels-only", objective={"ref": "objectives.synthetic:ZDT1"})
    labels_only.update(
        space=None, metrics=[{"name": "f1", "direction": "min", "reference": 1.0}], preference=None
    )
    engine.register(ExperimentSpec.model_validate(labels_only))
    with pytest.raises(InvalidRequest, match=r"contexts\.features"):
        engine.suggest("labels-only", "ivy", [1.0, 2.0, 3.0, 4.0, 5.0])
    # a vector of another length stored earlier (before lengths were declared) is skipped
    engine.store.add_suggestion(
        suggestion_id="legacy", experiment="genai", user_id="ivy", context={"label": "c", "features": [1.0]},
        params=engine.suggest("genai", "ivy").params, variant="default", expires_at=0.0,
    )  # fmt: skip
    assert engine.suggest("genai", "ivy", [1887.0, 0.18, 7.5, 128.0, 128.0]).context


def test_cluster_names_cannot_collide_between_engines_that_have_not_synced() -> None:
    photo, logo = [1887.0, 0.18, 7.5, 128.0, 128.0], [195.0, 0.02, 2.1, 128.0, 128.0]
    here, there = ContextClusters(), ContextClusters()  # two replicas, neither read the other
    assert here.assign(photo) != there.assign(logo)
    assert here.label_for(photo) == there.label_for(photo)  # the same point, the same name
