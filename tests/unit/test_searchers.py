"""Conformance suite: every searcher family passes the same tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import optuna
import pytest

from engine.offline.searchers import SEARCHERS, AutoSearcher, Searcher, make_searcher
from engine.offline.searchers.portfolio import stalled
from engine.spec import CategoricalParam, FixedParam, FloatParam, IntParam, MetricSpec, Space

SPACE = Space(
    {
        "x": FloatParam(low=0.0, high=1.0),
        "lr": FloatParam(low=1e-4, high=1e-1, log=True),
        "k": IntParam(low=1, high=8),
        "mode": CategoricalParam(choices=["a", "b", "c"]),
        "iters": FixedParam(value=10),
    }
)
METRICS = [
    MetricSpec(name="f1", direction="min", reference=10.0),
    MetricSpec.model_validate(
        {"name": "f2", "direction": "max", "reference": -10.0, "constraint": ">= -2.0"}
    ),
]
OPTIONS = {
    "nsga2": {"population_size": 6},
    "pymoo-nsga2": {"pop_size": 6},
    "gp": {"n_startup_trials": 4},
    "auto": {"startup": 4, "model_until": 10, "population_size": 6},  # every phase within 24 trials
}


# auto runs GP only on spaces without categories: "auto-gp" is auto on SPACE without `mode`,
# "auto-3" the same with a third objective (its GP phase scalarises: ParEGO)
NUMERIC = Space({name: p for name, p in SPACE.params.items() if name != "mode"})
THIRD = MetricSpec(name="f3", direction="min", reference=10.0)
CASES = (*SEARCHERS, "auto-gp", "auto-3")


def evaluate(params: dict) -> dict[str, float] | None:
    """A cheap mixed-variable bi-objective problem; mode 'c' with k=8 fails (no mode: 'a')."""
    mode = params.get("mode", "a")
    if mode == "c" and params["k"] == 8:
        return None
    penalty = {"a": 0.0, "b": 0.3, "c": 0.6}[mode]
    f1 = params["x"] + penalty + abs(math.log10(params["lr"]) + 2) / 3
    f3 = (params["x"] - 0.5) ** 2 + abs(math.log10(params["lr"]) + 3) / 3  # read by auto-3 only
    return {"f1": f1, "f2": -((1 - params["x"]) ** 2) - params["k"] / 8 - penalty, "f3": f3}


def build(name: str, seed: int = 7) -> Searcher:
    if name in ("auto-gp", "auto-3"):
        metrics = [*METRICS, THIRD] if name == "auto-3" else METRICS
        return make_searcher("auto", NUMERIC, metrics, seed=seed, options=OPTIONS["auto"])
    return make_searcher(name, SPACE, METRICS, seed=seed, options=OPTIONS.get(name))


def mirrored(params: dict) -> dict[str, float] | None:
    """The same problem with both objectives' signs flipped: the best trials become the worst."""
    values = evaluate(params)
    return None if values is None else {"f1": -values["f1"], "f2": -values["f2"] - 4.0, "f3": -values["f3"]}


Objective = Callable[[dict], dict[str, float] | None]


def drive(searcher: Searcher, n: int, batch: int = 2, objective: Objective = evaluate) -> list[dict]:
    seen: list[dict] = []
    while len(seen) < n:
        trials = searcher.ask(batch)
        assert trials, f"{searcher.name} proposed nothing with no trial pending"
        for t in trials:
            seen.append(t.params)
            searcher.tell(t.trial_id, objective(t.params))
    return seen


N = {"gp": 8}


@pytest.mark.parametrize("name", CASES)
def test_bounds_and_categories_are_respected(name: str) -> None:
    searcher = build(name)
    params = drive(searcher, N.get(name, 24))
    for p in params:
        assert searcher.space.contains(p), p
        assert isinstance(p["k"], int)
    assert len({p.get("mode") for p in params}) > 1 or "mode" not in searcher.space.free


@pytest.mark.parametrize("name", CASES)
def test_same_seed_same_trials_other_seed_other_trials(name: str) -> None:
    n = N.get(name, 16)
    assert drive(build(name, seed=3), n) == drive(build(name, seed=3), n)
    assert drive(build(name, seed=3), n) != drive(build(name, seed=4), n)


@pytest.mark.parametrize("name", CASES)
def test_state_round_trip_continues_identically(name: str) -> None:
    original = build(name)
    drive(original, N.get(name, 12))
    pending = original.ask(1)
    restored = Searcher.restore(original.state())
    assert [t.trial_id for t in restored.pending()] == [t.trial_id for t in pending]
    for s in (original, restored):
        for t in pending:
            s.tell(t.trial_id, evaluate(t.params))
    assert drive(original, 6) == drive(restored, 6)


# the searchers that learn from results, with the trials they sample before they do: TPE's
# 10 start-up trials, a population of 6, auto's 4 random points (gp learns too, but is too
# slow to run twice here; auto runs it for 6 trials on a numeric space)
STARTUP = {"tpe": 10, "nsga2": 6, "pymoo-nsga2": 6, "auto": 4, "auto-gp": 4, "auto-3": 4}


@pytest.mark.parametrize("name", STARTUP)
def test_what_is_told_steers_what_is_asked(name: str) -> None:
    """Same seed, mirrored results: the start-up trials agree, most trials after them differ
    (a child may repeat a parent both runs share). A searcher that dropped what `tell` says
    would propose the same trials for both."""
    n = STARTUP[name]
    told = drive(build(name), n + 12)
    mirror = drive(build(name), n + 12, objective=mirrored)
    assert told[:n] == mirror[:n]
    # at least 7 of 12 differ on seeds 0-9 (failed trials can lengthen NSGA-II's first generation)
    assert sum(a != b for a, b in zip(told[n:], mirror[n:], strict=True)) >= 6


@pytest.mark.parametrize("name", CASES)
def test_failures_and_unknown_ids(name: str) -> None:
    searcher = build(name)
    trials = searcher.ask(3)
    assert len({t.trial_id for t in trials}) == len(trials) > 0
    assert {t.trial_id for t in searcher.pending()} == {t.trial_id for t in trials}
    for t in trials:
        searcher.tell(t.trial_id, None)
    assert searcher.pending() == []
    with pytest.raises(KeyError):
        searcher.tell(trials[0].trial_id, {"f1": 0.0, "f2": 0.0})
    with pytest.raises(KeyError):
        searcher.tell("no-such-trial", None)
    # after failures it still proposes valid trials
    assert all(searcher.space.contains(p) for p in drive(searcher, 6))


@pytest.mark.parametrize("name", CASES)
def test_missing_metric_is_a_clear_error(name: str) -> None:
    searcher = build(name)
    (t,) = searcher.ask(1)
    with pytest.raises(ValueError, match="f2"):
        searcher.tell(t.trial_id, {"f1": 1.0})


def test_unknown_searcher_and_bad_options() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        make_searcher("annealing", SPACE, METRICS)
    with pytest.raises(ValueError, match=r"searcher\.options"):
        make_searcher("tpe", SPACE, METRICS, options={"no_such_option": 1})
    with pytest.raises(ValueError, match=r"searcher\.options"):
        make_searcher("pymoo-nsga2", SPACE, METRICS, options={"no_such_option": 1})


def test_auto_switches_searchers_on_one_shared_history() -> None:
    """Random points, then GP, then pymoo's NSGA-II by trials told; each phase starts from every trial
    told before it, and a trial asked in one phase and told in the next reaches the new one."""
    options = {**OPTIONS["auto"], "patience": 0}  # GP alone in its phase
    searcher = make_searcher("auto", NUMERIC, METRICS, seed=7, options=options)
    assert isinstance(searcher, AutoSearcher)
    drive(searcher, 4, batch=1)
    assert searcher.phase == "model"
    drive(searcher, 5, batch=1)
    assert searcher._study is not None
    assert len(searcher._study.trials) == 9  # GP's study holds the random points too
    first, second = searcher.ask(2)  # both from the GP study: 9 told
    searcher.tell(first.trial_id, evaluate(first.params))
    assert searcher.phase == "nsga2"
    (third,) = searcher.ask(1)
    nsga2 = searcher._pymoo
    assert nsga2 is not None
    assert len(nsga2._algorithm.pop) == 10  # its first population: every trial told, none cold
    searcher.tell(second.trial_id, evaluate(second.params))  # asked by GP, learnt by NSGA-II
    assert len(nsga2._learnt) == 1  # joins the next generation told
    assert {t.trial_id for t in searcher.pending()} == {third.trial_id}
    searcher.tell(third.trial_id, evaluate(third.params))
    assert all(NUMERIC.contains(p) for p in drive(searcher, 12))
    assert nsga2._learnt == []


def test_auto_gives_nsga2_turns_while_gp_raises_no_hypervolume() -> None:
    """After `patience` trials in a row without progress GP and NSGA-II take turns; each
    learns the other's trials; a trial that raises the hypervolume gives GP the phase back."""
    options = {"startup": 4, "model_until": 40, "population_size": 6, "patience": 2}
    searcher = make_searcher("auto", NUMERIC, METRICS, seed=7, options=options)
    assert isinstance(searcher, AutoSearcher)

    def worse(k: int) -> dict[str, float]:  # the first raises the hypervolume, none after it
        return {"f1": 5.0 + k / 10, "f2": -1.0 - k / 10}

    for k in range(4):
        (t,) = searcher.ask(1)
        searcher.tell(t.trial_id, worse(k))
    sources = []
    for k in range(4, 10):
        (t,) = searcher.ask(1)
        sources.append("nsga2" if isinstance(searcher._running[t.trial_id], str) else "model")
        searcher.tell(t.trial_id, worse(k))
    assert sources == ["model", "nsga2"] * 3
    study, nsga2 = searcher._study, searcher._pymoo
    assert study is not None and nsga2 is not None
    assert len(study.trials) == 10  # NSGA-II's 3 trials too
    assert len(nsga2._algorithm.pop) + len(nsga2._learnt) + len(nsga2._results) == 10
    (t,) = searcher.ask(1)  # GP's turn: it finds a better point
    searcher.tell(t.trial_id, {"f1": 0.0, "f2": 0.0})
    assert [isinstance(searcher._running[u.trial_id], str) for u in searcher.ask(2)] == [False, False]


def test_auto_counts_small_rises_as_a_stall() -> None:
    """A measured metric's noise raises the hypervolume a little every trial: relative to
    the rise since the first point beat the reference that is no progress, and GP and
    NSGA-II take turns; a rise as large as the first ones hands GP the phase back."""
    options = {"startup": 4, "model_until": 40, "population_size": 6, "patience": 2}
    searcher = make_searcher("auto", NUMERIC, METRICS, seed=7, options=options)
    assert isinstance(searcher, AutoSearcher)

    def told(values: dict[str, float]) -> str:
        (t,) = searcher.ask(1)
        source = "nsga2" if isinstance(searcher._running[t.trial_id], str) else "model"
        searcher.tell(t.trial_id, values)
        return source

    for k in range(4):  # each of the random start's points a large step better
        told({"f1": 8.0 - 2 * k, "f2": -1.0})
    sources = [told({"f1": 2.0 - 0.001 * (k + 1), "f2": -1.0}) for k in range(6)]
    assert sources == ["model", "model", "nsga2", "model", "nsga2", "model"]
    told({"f1": 0.0, "f2": -1.0})  # GP's or NSGA-II's: a step as large as the first ones
    assert [isinstance(searcher._running[u.trial_id], str) for u in searcher.ask(2)] == [False, False]


def test_stalled_measures_rises_against_the_run_so_far() -> None:
    assert not stalled([0.0, 0.0, 0.0, 0.0], 2)  # nothing beats the reference yet
    assert not stalled([0.5, 0.6], 2)  # too few trials since the first positive
    assert stalled([0.5, 0.6, 0.6, 0.6], 2)  # no rise in the last two
    assert stalled([0.1, 0.5, 0.9, 0.9001, 0.9002], 2)  # 0.0002 against a mean rise of 0.4
    assert not stalled([0.1, 0.5, 0.9, 0.95, 1.0], 2)  # 0.1 against 0.45: progress
    assert not stalled([0.5, 0.6, 0.6, 0.6], 0)  # patience 0: never


def test_auto_models_a_space_with_categories_with_tpe() -> None:
    """As Optuna's AutoSampler: no GP where a parameter is categorical (seconds per ask
    there); TPE is the model, after Sobol points, then NSGA-II as on numeric spaces."""
    searcher = build("auto")
    assert isinstance(searcher, AutoSearcher)
    assert not searcher.uses_gp and not searcher.scalarised
    assert searcher._study is not None  # TPE starts from Sobol points, GP from random ones
    assert isinstance(searcher._study.sampler, optuna.samplers.QMCSampler)
    numeric = make_searcher("auto", NUMERIC, METRICS)
    assert isinstance(numeric, AutoSearcher) and numeric._study is not None
    assert isinstance(numeric._study.sampler, optuna.samplers.RandomSampler)
    drive(searcher, 5, batch=1)
    assert searcher.phase == "model"
    assert searcher._study is not None
    assert isinstance(searcher._study.sampler, optuna.samplers.TPESampler)
    assert len(searcher._study.trials) == 5  # the Sobol points and its own
    drive(searcher, 5, batch=1)
    assert searcher.phase == "nsga2"
    drive(searcher, 6, batch=1)
    assert searcher._pymoo is not None


def test_auto_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown \\['pop'\\]"):
        make_searcher("auto", SPACE, METRICS, options={"pop": 3})
    with pytest.raises(ValueError, match="whole numbers"):
        make_searcher("auto", SPACE, METRICS, options={"population_size": 1})


def test_the_unit_cubes_corners_decode_inside_the_bounds() -> None:
    """exp(log(0.1)) is 0.10000000000000006: a searcher at the cube's edge (pymoo's NSGA-II
    after a warm start at a bound) must still propose a point inside the space."""
    for corner in (0.0, 1.0):
        params = SPACE.from_unit([corner] * len(SPACE.free))
        assert SPACE.contains({**SPACE.fixed, **params}), params
    assert SPACE.from_unit(SPACE.to_unit({"x": 1.0, "lr": 0.1, "k": 8, "mode": "c"}))["lr"] == 0.1


def test_auto_scalarises_for_gp_with_three_objectives() -> None:
    """With three objectives each GP ask models one random Chebyshev scalarisation of the
    whole history (ParEGO: a single-objective study, where hypervolume improvement costs
    ~10x more an ask). Scores are 0 at the best value seen and the largest weight (+ rho
    times their sum) at the reference; the history keeps the values as measured."""
    options = {"startup": 2, "model_until": 40, "patience": 0}
    searcher = make_searcher("auto", NUMERIC, [*METRICS, THIRD], seed=7, options=options)
    assert isinstance(searcher, AutoSearcher) and searcher.scalarised
    measured = [{"f1": 0.0, "f2": 0.0, "f3": 0.0}, {"f1": 10.0, "f2": -10.0, "f3": 10.0}]
    for values in [*measured, {"f1": 1.0, "f2": -1.0, "f3": 1.0}]:  # random, random, GP
        (t,) = searcher.ask(1)
        source = searcher._running[t.trial_id]
        searcher.tell(t.trial_id, values)
    assert not isinstance(source, str)
    study = source[0]
    assert len(study.directions) == 1
    best, at_reference = (trial.value for trial in study.trials[:2])
    weights = np.random.default_rng([7, 0]).dirichlet(np.ones(3))  # the seed's, first ask
    assert best == 0.0 and at_reference == pytest.approx(weights.max() + 0.05)  # rho: 0.05
    assert [t.values for t in searcher._told] == [[0.0, 0.0, 0.0], [10.0, -10.0, 10.0], [1.0, -1.0, 1.0]]
    assert searcher._study is not None and len(searcher._study.trials) == 3
    two = make_searcher("auto", NUMERIC, METRICS)
    assert isinstance(two, AutoSearcher) and not two.scalarised


def test_auto_gives_gp_its_phase_while_no_point_beats_the_reference() -> None:
    """With no hypervolume yet there is no progress to miss: GP keeps every turn."""
    options = {"startup": 4, "model_until": 40, "population_size": 6, "patience": 2}
    searcher = make_searcher("auto", NUMERIC, METRICS, seed=7, options=options)
    assert isinstance(searcher, AutoSearcher)
    outside = {"f1": 20.0, "f2": -1.0}  # f1 worse than its reference, 10
    for _ in range(10):
        (t,) = searcher.ask(1)
        searcher.tell(t.trial_id, outside)
    assert searcher._pymoo is None
