"""Variants, sticky assignment, layers and the A/B report, in process over a SQLite store
(over HTTP through two replicas: tests/integration/test_abtest_http.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.experiments import ABTest, VariantError, VariantPatch, VariantSpec, shares, unit_hash
from engine.experiments.allocation import capped
from engine.experiments.comments import tags
from engine.experiments.stats import Summary
from engine.online import Feedback, InvalidRequest, OnlineEngine, Priors
from engine.spec import ExperimentSpec, load_spec
from engine.store import EventStore

SPEC = load_spec("configs/genai.yaml")
SPEC_PRIORS = Priors()


def with_ab(name: str = "genai", **ab: object) -> ExperimentSpec:
    data = SPEC.model_dump(mode="json")
    return ExperimentSpec.model_validate({**data, "name": name, "ab": {**data["ab"], **ab}})


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore(f"sqlite:///{tmp_path / 'store.db'}")


def test_assignment_is_sticky_across_engines_restarts_and_weight_changes(tmp_path: Path) -> None:
    """10,000 users assigned through two engines over one store read the same variant
    through either, after a weight change, and after a restart."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first, second = OnlineEngine(EventStore(url)), OnlineEngine(EventStore(url))
    first.register(SPEC)
    first.create_variant("genai", VariantSpec(name="control", control=True))
    first.create_variant("genai", VariantSpec(name="bold", payload={"template": "bold {subject}"}))
    users = [f"user-{i}" for i in range(10_000)]
    assigned = {u: first.assign("genai", u).arm for u in users[:5000]}
    assigned |= {u: second.assign("genai", u).arm for u in users[5000:]}  # the second draws the rest
    counts = Counter(assigned.values())
    assert abs(counts["bold"] - 5000) < 4 * np.sqrt(2500)  # a 1:1 split
    first.patch_variant("genai", "bold", VariantPatch(weight=9.0))  # users already assigned keep theirs
    restarted = OnlineEngine(EventStore(url))
    for engine in (first, second, restarted):
        assert {u: engine.assign("genai", u).arm for u in users} == assigned
    newcomers = Counter(restarted.assign("genai", f"new-{i}").arm for i in range(2000))
    assert abs(newcomers["bold"] / 2000 - 0.9) < 4 * np.sqrt(0.09 / 2000)  # new users follow the weights


def test_first_write_wins_when_engines_disagree(store: EventStore) -> None:
    """Engines whose allocations differ (a bandit's shares, a stale weight) still agree on a
    user once one of them stored the assignment."""
    spec = with_ab()
    a, b = ABTest(store, spec), ABTest(store, spec)
    a.create(VariantSpec(name="control", control=True))
    a.create(VariantSpec(name="treat"))
    b.sync(force=True)
    b.shares = {"control": 0.0, "treat": 1.0}  # b would put everyone in treat
    a.shares = {"control": 1.0, "treat": 0.0}
    assert a.assign("u1").arm == "control"
    assert b.assign("u1").arm == "control"  # b reads a's stored assignment


def test_reassign_draws_users_again_and_paused_variants_serve_the_control(store: EventStore) -> None:
    spec = with_ab()
    ab = ABTest(store, spec)
    ab.create(VariantSpec(name="control", control=True, weight=1.0))
    ab.create(VariantSpec(name="treat", weight=1.0))
    users = [f"u{i}" for i in range(400)]
    before = {u: ab.assign(u).arm for u in users}
    in_treat = [u for u in users if before[u] == "treat"]
    ab.patch("treat", VariantPatch(status="paused"))
    for u in in_treat:
        served = ab.assign(u)
        assert served.variant is not None and served.variant.name == "control" and served.arm is None
    ab.patch("treat", VariantPatch(status="running", weight=0.0))
    assert all(ab.assign(u).arm == "treat" for u in in_treat)  # still sticky: no reassign
    ab.patch("control", VariantPatch(reassign=True))
    assert all(ab.assign(u).arm == "control" for u in users)  # drawn again, treat weighs 0 now


def test_salted_hashes_are_uniform_and_independent() -> None:
    users = [f"u{i}" for i in range(20_000)]
    a = np.array([unit_hash("exp-a", u) for u in users])
    b = np.array([unit_hash("exp-b", u) for u in users])
    assert abs(a.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(users))
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(len(users))
    split_a, split_b = a < 0.5, b < 0.5  # two experiments' 50/50 splits cross evenly
    assert abs((split_a & split_b).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(users))


def test_layers_keep_experiments_apart(store: EventStore) -> None:
    left = with_ab("left", layer="shared", range=(0.0, 0.5))
    right = with_ab("right", layer="shared", range=(0.5, 1.0))
    engine = OnlineEngine(store)
    assert engine.register(left) and engine.register(right)
    with pytest.raises(InvalidRequest, match="overlaps experiment 'left'"):
        engine.register(with_ab("middle", layer="shared", range=(0.4, 0.6)))
    for name in ("left", "right"):
        engine.create_variant(name, VariantSpec(name="control", control=True))
        engine.create_variant(name, VariantSpec(name="treat"))
    users = [f"u{i}" for i in range(600)]
    enrolled = {
        name: {u for u in users if engine._experiment(name).ab.assign(u).arm is not None}
        for name in ("left", "right")
    }
    assert not enrolled["left"] & enrolled["right"]
    assert enrolled["left"] | enrolled["right"] == set(users)


def test_holdout_is_served_the_control_and_reported_apart(store: EventStore) -> None:
    ab = ABTest(store, with_ab(holdout=0.2))
    ab.create(VariantSpec(name="control", control=True))
    ab.create(VariantSpec(name="treat"))
    results = [ab.assign(f"u{i}") for i in range(2000)]
    held = [r for r in results if r.holdout]
    assert abs(len(held) / 2000 - 0.2) < 4 * np.sqrt(0.16 / 2000)
    assert all(r.variant is not None and r.variant.name == "control" for r in held)
    assert ab.report()["holdout"]["users"] == len(held)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ab: ab.create(VariantSpec(name="second", control=True)), "is the control already"),
        (lambda ab: ab.patch("nope", VariantPatch(weight=1.0)), "no variant 'nope'"),
        (lambda ab: ab.patch("control", VariantPatch(weight=0.0)), "weights sum to 0"),
        (lambda ab: ab.create(VariantSpec(name="control", version="0.9.0")), "version must be higher"),
        (
            lambda ab: ab.create(VariantSpec(name="p", kind="params", payload={"params": {"nope": 1}})),
            "not parameters",
        ),
        (
            lambda ab: ab.create(
                VariantSpec(name="p", kind="params", payload={"params": {"guidance_scale": 99.0}})
            ),
            "outside",
        ),
        (
            lambda ab: ab.create(VariantSpec(name="l", kind="learner", payload={"priors": {"x": 1}})),
            "positive numbers",
        ),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(
    store: EventStore, change: Callable[[ABTest], object], message: str
) -> None:
    ab = ABTest(store, with_ab())
    ab.create(VariantSpec(name="control", control=True))
    before = list(store.events("variants"))
    with pytest.raises(VariantError, match=message):
        change(ab)
    assert list(store.events("variants")) == before


def test_negative_weight_and_bad_version_fail_validation() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        VariantSpec(name="x", weight=-1)
    with pytest.raises(ValueError, match="semantic version"):
        VariantSpec(name="x", version="v2")


def test_suggestions_carry_the_variant_and_feedback_is_attributed(store: EventStore) -> None:
    engine = OnlineEngine(store)
    engine.register(SPEC)
    engine.create_variant("genai", VariantSpec(name="control", control=True, payload={"template": "a {x}"}))
    preset = {"provider": "leonardo", "guidance_scale": 7.0}
    engine.create_variant("genai", VariantSpec(name="preset", kind="params", payload={"params": preset}))
    rng = np.random.default_rng(0)
    for i in range(120):
        s = engine.suggest("genai", f"u{i}")
        assert s.variant in {"control", "preset"} and s.variant_version == "1.0.0"
        if s.variant == "preset":
            assert {k: s.params[k] for k in preset} == preset
        else:
            assert s.payload == {"template": "a {x}"}
        stars = 4 if s.variant == "preset" else 3
        engine.feedback(s.suggestion_id, Feedback(rating=int(np.clip(stars + rng.integers(-1, 2), 1, 5))))
    report = engine.abtest("genai")
    rows = {r["name"]: r for r in report["variants"]}
    assert rows["control"]["users"] + rows["preset"]["users"] == 120
    assert rows["preset"]["mean_rating"] > rows["control"]["mean_rating"] + 0.5
    assert report["recommendation"]["action"] == "ship" and report["recommendation"]["variant"] == "preset"
    assert not report["srm"]["mismatch"]


def test_thompson_shares_favour_the_best_and_keep_the_floor() -> None:
    arms = {"a": Summary(200, 3.0, 1.0), "b": Summary(200, 3.2, 1.0), "c": Summary(200, 3.5, 1.0)}
    found = shares("thompson", {"a": 1, "b": 1, "c": 1}, arms, floor=0.05)
    assert found["c"] > 0.8 and min(found.values()) >= 0.05 and sum(found.values()) == pytest.approx(1)
    ucb = shares("ucb", {"a": 1, "b": 1, "c": 1}, arms, floor=0.05)
    assert ucb == pytest.approx({"a": 0.05, "b": 0.05, "c": 0.9})
    assert shares("thompson", {"a": 1, "b": 1}, {}, floor=0.05) == pytest.approx(
        {"a": 0.5, "b": 0.5}, abs=0.03
    )


def test_a_learner_variant_keeps_its_own_learner_within_the_context_bound(tmp_path: Path) -> None:
    """A learner variant with its own constants suggests and learns with its own model, per
    context, counted against the same bound; a second engine rebuilds both from the store."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = OnlineEngine(EventStore(url), max_context_models=4)
    engine.register(SPEC)
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    tuned = {"lengthscale": 0.3, "arm_share": 0.6}
    engine.create_variant("genai", VariantSpec(name="tuned", kind="learner", payload={"priors": tuned}))
    served: Counter[str] = Counter()
    for i in range(80):
        for context in ("portrait", "landscape", "product"):
            s = engine.suggest("genai", f"u{i}", context)
            served[s.variant] += 1
            engine.feedback(s.suggestion_id, Feedback(rating=4 if s.params["provider"] == "leonardo" else 2))
    exp = engine._experiment("genai")
    own = exp.learners["tuned@1.0.0"]
    assert own.priors.lengthscale == 0.3 and exp.model.priors.lengthscale == SPEC_PRIORS.lengthscale
    assert own.global_model.count == served["tuned"] and exp.model.global_model.count == served["control"]
    assert len(own.contexts) <= 2 and len(exp.model.contexts) <= 2  # 4 shared by the two learners
    again = OnlineEngine(EventStore(url), max_context_models=4)._experiment("genai")
    assert again.learners["tuned@1.0.0"].global_model.count == served["tuned"]
    assert again.model.global_model.count == served["control"]
    evicted = [c for c in ("portrait", "landscape", "product") if own.evicted(c)]
    assert evicted  # three contexts, two slots: one was dropped and is rebuilt on use
    exp.ensure_context_model(evicted[0], "tuned@1.0.0")
    assert own.context(evicted[0]).count == 80 * served["tuned"] // 240


def test_a_broken_split_blocks_the_recommendation(store: EventStore) -> None:
    """Assignments that do not follow their own shares (a client bug, a biased router) are
    found by the sample-ratio check, which blocks shipping even a clear winner."""
    ab = ABTest(store, with_ab())
    ab.create(VariantSpec(name="control", control=True))
    ab.create(VariantSpec(name="treat"))
    rng = np.random.default_rng(8)
    for i in range(600):  # meant 50/50, written 60/40
        variant = "treat" if rng.random() < 0.6 else "control"
        store.assign(experiment="genai", layer="genai", epoch=0, user_id=f"u{i}", variant=variant,
                     holdout=False, shares={"control": 0.5, "treat": 0.5})  # fmt: skip
        store.add_suggestion(suggestion_id=f"s{i}", experiment="genai", user_id=f"u{i}", context=None,
                             params={}, variant=f"{variant}@1.0.0", expires_at=1e12)  # fmt: skip
        rating = 5.0 if variant == "treat" else float(rng.integers(1, 4))
        store.add_feedback(idempotency_key="k", suggestion_id=f"s{i}", experiment="genai", user_id=f"u{i}",
                           rating=rating, signal=None, metrics=None)  # fmt: skip
    report = ab.report()
    assert report["srm"]["mismatch"] and report["srm"]["p_value"] < 1e-3
    rows = {r["name"]: r for r in report["variants"]}
    assert rows["treat"]["decision"] == "ship"  # the comparison alone would ship it
    assert report["recommendation"]["action"] == "blocked"


def drive(engine: OnlineEngine, name: str, truth: dict[str, float], users: range, seed: int) -> int:
    """Users rate once, their stars their variant's true mean plus noise of sd 1, until a
    promotion or rollback (checked every 25 users); returns the users driven."""
    rng = np.random.default_rng(seed)
    for i in users:
        s = engine.suggest(name, f"u{i}")
        stars = int(np.clip(round(truth[s.variant] + rng.normal(0, 1.0)), 1, 5))
        engine.feedback(s.suggestion_id, Feedback(rating=stars))
        if i % 25 == 0 and any(e["change"] != "created" for e in engine.history(name)):
            return i + 1
    return len(users)


@pytest.mark.parametrize(("lift", "change"), [(0.5, "promoted"), (-0.5, "rolled_back")])
def test_guardrails_promote_a_better_variant_and_roll_back_a_worse_one(
    store: EventStore, lift: float, change: str
) -> None:
    spec = with_ab(sync_s=0.0, guardrails={"auto": True})
    engine = OnlineEngine(store)
    engine.register(spec)
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    engine.create_variant("genai", VariantSpec(name="treat"))
    truth = {"control": 3.0, "treat": 3.0 + lift}
    driven = drive(engine, "genai", truth, range(1200), seed=9)
    decisions = [e for e in engine.history("genai") if e["change"] in ("promoted", "rolled_back")]
    assert [(e["variant"], e["change"]) for e in decisions] == [("treat", change)]
    evidence = decisions[0]["state"]["decision"]
    assert evidence["by"] == "guardrails" and min(evidence["users"]) >= 10
    low, high = evidence["interval"]
    assert low > 0.1 if change == "promoted" else high < -0.2  # the margins, at the test's confidence
    variants = {v.name: v for v in engine.variants("genai")}
    if change == "promoted":
        assert variants["treat"].control and variants["control"].status == "stopped"
    else:
        assert variants["treat"].status == "stopped" and variants["control"].control
    # from now on everyone is served the winner, whatever they were assigned
    served = {engine.suggest("genai", f"u{i}").variant for i in range(driven, driven + 60)}
    assert served == {"treat" if change == "promoted" else "control"}


def test_no_decision_within_the_margins(store: EventStore) -> None:
    """Variants alike: after 600 users the guardrails have neither promoted nor rolled back."""
    engine = OnlineEngine(store)
    engine.register(with_ab(sync_s=0.0, guardrails={"auto": True}))
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    engine.create_variant("genai", VariantSpec(name="same"))
    assert drive(engine, "genai", {"control": 3.5, "same": 3.5}, range(600), seed=10) == 600
    assert [e["change"] for e in engine.history("genai")] == ["created", "created"]


def test_history_after_promote_and_rollback_is_exact(store: EventStore) -> None:
    engine = OnlineEngine(store)
    engine.register(SPEC)
    engine.create_variant("genai", VariantSpec(name="a", control=True))
    engine.create_variant("genai", VariantSpec(name="b", payload={"template": "b"}))
    engine.create_variant("genai", VariantSpec(name="c"))
    engine.patch_variant("genai", "c", VariantPatch(weight=2.0))
    promoted = engine.decide("genai", "b", "promote")
    rolled = engine.decide("genai", "c", "rollback")
    with pytest.raises(VariantError, match="is the control already"):
        engine.decide("genai", "b", "promote")
    with pytest.raises(VariantError, match="stopped already"):
        engine.decide("genai", "c", "rollback")
    history = engine.history("genai")
    assert [(e["variant"], e["change"]) for e in history] == [
        ("a", "created"), ("b", "created"), ("c", "created"), ("c", "updated"),
        ("b", "promoted"), ("c", "rolled_back"),
    ]  # fmt: skip
    assert history[-2] == promoted and history[-1] == rolled
    assert promoted["state"]["control"] and promoted["state"]["decision"]["by"] == "admin"
    final = {v.name: (v.control, v.status, v.weight) for v in engine.variants("genai")}
    assert final == {"a": (False, "stopped", 1.0), "b": (True, "running", 1.0), "c": (False, "stopped", 2.0)}
    report = engine.abtest("genai")
    assert [(r["name"], r.get("decision")) for r in report["variants"]] == [
        ("a", "stopped"),
        ("b", None),
        ("c", "stopped"),
    ]
    assert report["control"] == "b" and report["decisions"] == [promoted, rolled]
    replayed = OnlineEngine(EventStore(store.url)).variants("genai")  # a fresh fold agrees
    assert {v.name: (v.control, v.status, v.weight) for v in replayed} == final


def test_capped_shares_hold_the_cap_and_sum_to_one() -> None:
    assert capped({"a": 0.5, "b": 0.5}, {"b": 0.01}) == pytest.approx({"a": 0.99, "b": 0.01})
    found = capped({"a": 0.1, "b": 0.3, "c": 0.6}, {"c": 0.05, "b": 0.25})
    assert found == pytest.approx({"a": 0.7, "b": 0.25, "c": 0.05}) and sum(found.values()) == pytest.approx(
        1
    )


def test_a_ramp_steps_up_while_the_guardrails_hold(store: EventStore) -> None:
    ramp = {"ramp": [0.05, 0.25, 1.0], "ramp_users": 15}
    engine = OnlineEngine(store)
    engine.register(with_ab(sync_s=0.0, guardrails=ramp))
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    engine.create_variant("genai", VariantSpec(name="treat"))
    rng = np.random.default_rng(11)
    first_step = []
    for i in range(900):
        s = engine.suggest("genai", f"u{i}")
        caps = [e["state"]["cap"] for e in engine.history("genai") if e["change"] == "ramped"]
        if not caps:
            first_step.append(s.variant)
        engine.feedback(s.suggestion_id, Feedback(rating=int(np.clip(round(3 + rng.normal()), 1, 5))))
        if caps and caps[-1] == 1.0:
            break
    assert caps == [0.25, 1.0]  # 5% -> 25% -> 100%
    share = first_step.count("treat") / len(first_step)
    assert len(first_step) > 150 and abs(share - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(first_step))


def test_a_broken_guardrail_metric_stops_the_ramp(store: EventStore) -> None:
    guard = {"ramp": [0.25, 0.5, 1.0], "ramp_users": 400, "metrics": {"speed": 0.1}}
    engine = OnlineEngine(store)
    engine.register(with_ab(sync_s=0.0, guardrails=guard))
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    engine.create_variant("genai", VariantSpec(name="slow"))
    rng = np.random.default_rng(12)
    for i in range(1500):
        s = engine.suggest("genai", f"u{i}")
        speed = (4000.0 if s.variant == "slow" else 3000.0) + rng.normal(0, 500)
        engine.feedback(s.suggestion_id, Feedback(rating=4, metrics={"speed": speed}))
        if i % 25 == 0 and engine.variants("genai")[1].status == "stopped":
            break
    (decision,) = [e for e in engine.history("genai") if e["change"] != "created"]
    assert decision["change"] == "rolled_back" and decision["state"]["decision"]["metric"] == "speed"
    assert decision["state"]["cap"] == 0.25  # it never stepped up
    assert {engine.suggest("genai", f"late-{i}").variant for i in range(40)} == {"control"}


@pytest.mark.parametrize(
    ("comment", "issues"),
    [
        ("Too dark and a bit blurry", ["too dark", "blurry"]),
        ("not blurry at all, but the colours are off", ["wrong colors"]),
        ("Lovely, and not too dark", []),
        ("wrong style, way too cartoonish", ["wrong style"]),
        ("took forever and it is glitchy", ["artifacts", "too slow"]),
        ("OVEREXPOSED", ["too bright"]),
        ("It is sharp and bright enough", []),
    ],
)
def test_comments_are_tagged_with_the_issues_they_name(comment: str, issues: list[str]) -> None:
    assert tags(comment) == issues


def test_comment_issues_are_counted_per_variant(store: EventStore) -> None:
    engine = OnlineEngine(store)
    engine.register(SPEC)
    engine.create_variant("genai", VariantSpec(name="control", control=True))
    engine.create_variant("genai", VariantSpec(name="moody", payload={"template": "a moody photo"}))
    said = {"control": "great, sharp", "moody": "too dark, and blurry at the edges"}
    for i in range(60):
        s = engine.suggest("genai", f"u{i}")
        engine.feedback(s.suggestion_id, Feedback(rating=3, comment=said[s.variant]))
    rows = {r["name"]: r for r in engine.abtest("genai")["variants"]}
    moody = rows["moody"]["users"]
    assert rows["moody"]["issues"] == {"too dark": moody, "blurry": moody} and rows["control"]["issues"] == {}
    with pytest.raises(ValueError, match="at most 1000 characters"):
        Feedback(rating=3, comment="x" * 1001)


def test_evolution_derives_candidates_that_are_then_measured(store: EventStore) -> None:
    """After every 10 ratings a candidate, while fewer than 2 run: first a prompt recombined
    from the best two templates, with an edit for what users said of the best ("too dark");
    then a parameter preset from the learner's best settings. New users are assigned to
    them at their small weight, and the report measures them like any variant."""
    engine = OnlineEngine(store)
    evolution = {"enabled": True, "every": 10, "kinds": ["prompt", "params"]}
    engine.register(with_ab(sync_s=0.0, evolution=evolution))
    plain, vivid = "a photo of {subject}, natural light", "a photo of {subject}, vivid colors"
    engine.create_variant("genai", VariantSpec(name="control", control=True, payload={"template": plain}))
    engine.create_variant("genai", VariantSpec(name="vivid", payload={"template": vivid}))
    truth = {"control": 2.0, "vivid": 4.5}
    rng = np.random.default_rng(4)
    for i in range(400):
        s = engine.suggest("genai", f"u{i}")
        stars = int(np.clip(round(truth.get(s.variant, 3.5) + rng.normal(0, 0.5)), 1, 5))
        engine.feedback(
            s.suggestion_id, Feedback(rating=stars, comment="too dark" if s.variant == "vivid" else None)
        )
    variants = {v.name: v for v in engine.variants("genai")}
    assert sorted(n for n in variants if n.startswith("evolved-")) == [
        "evolved-1",
        "evolved-2",
    ]  # at most 2 live
    prompt, preset = variants["evolved-1"], variants["evolved-2"]
    assert prompt.kind == "prompt" and prompt.parent == "vivid@1.0.0"
    assert prompt.payload["template"] == "a photo of {subject}, vivid colors, natural light, bright lighting"
    assert prompt.payload["evolution"]["edits"] == ["bright lighting"]
    assert prompt.reason == "evolution 1: recombined vivid@1.0.0 and control@1.0.0; edits for too dark"
    assert prompt.metrics is not None and prompt.metrics["parent"]["mean_rating"] > 4  # vivid's, then
    assert prompt.metrics["control"]["mean_rating"] < 3
    assert preset.kind == "params" and preset.weight == 0.1
    served = [engine.suggest("genai", f"late{i}") for i in range(200)]
    from_preset = [s for s in served if s.variant == "evolved-2"]
    assert from_preset and all(s.params.items() >= preset.payload["params"].items() for s in from_preset)
    rows = {r["name"]: r for r in engine.abtest("genai")["variants"]}
    assert rows["evolved-1"]["rated_users"] > 0 and rows["evolved-2"]["rated_users"] > 0
