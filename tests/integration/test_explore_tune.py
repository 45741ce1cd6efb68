"""Exploration through a real Ray Tune on a local Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skimage.data
import yaml

from engine.offline.explore import explore, run_local
from engine.ray import run_on_tune
from engine.spec import parse_spec

pytestmark = pytest.mark.usefixtures("ray_session")
SAMPLES = Path(os.path.dirname(skimage.data.__file__))


def zdt1(searcher: str, trials: int, concurrency: int = 1) -> Any:
    data = yaml.safe_load(Path("configs/zdt1.yaml").read_text())
    data.update(searcher={"name": searcher}, budget={"trials": trials}, concurrency=concurrency)
    return parse_spec(data)


def test_tune_runs_the_same_trials_as_the_local_loop(tmp_path: Path) -> None:
    spec = zdt1("tpe", trials=16)
    on_tune = explore(spec, tmp_path / "tune", runner=run_on_tune, progress=False)
    local = explore(spec, tmp_path / "local", runner=run_local, progress=False)
    cols = ["trial_id", "status", "metric.f1", "metric.f2", "hypervolume"]
    pd.testing.assert_frame_equal(on_tune.front[cols], local.front[cols])
    tune_trials = pd.read_parquet(tmp_path / "tune" / "trials.parquet")
    local_trials = pd.read_parquet(tmp_path / "local" / "trials.parquet")
    pd.testing.assert_frame_equal(tune_trials[cols], local_trials[cols])
    assert (tune_trials["duration_s"] > 0).all()


def test_parallel_trials_respect_budget_and_the_front_is_consistent(tmp_path: Path) -> None:
    spec = zdt1("pymoo-nsga2", trials=30, concurrency=2)
    f1, f2 = spec.metrics  # a reference the first 30 trials reach into: (1.1, 10)
    spec = spec.model_copy(update={"metrics": [f1, f2.model_copy(update={"reference": 10.0})]})
    summary = explore(spec, tmp_path, runner=run_on_tune, progress=False)
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(trials) == 30 and trials["trial_id"].is_unique
    # the front is the brute-force non-dominated set of the trials, however they interleaved
    points = {t: (a, b) for t, a, b in trials[["trial_id", "metric.f1", "metric.f2"]].itertuples(index=False)}
    dominated = {
        t for t, (a1, a2) in points.items()
        for b1, b2 in points.values() if b1 <= a1 and b2 <= a2 and (b1, b2) != (a1, a2)
    }  # fmt: skip
    front = pd.read_parquet(tmp_path / "front.parquet")
    assert set(front["trial_id"]) == set(points) - dominated
    # and its hypervolume is the staircase's area up to the reference point
    xs = sorted(p for t in front["trial_id"] if (p := points[t])[0] < 1.1 and p[1] < 10.0)
    tops = ([10.0] + [b for _, b in xs])[: len(xs)]
    area = sum((1.1 - a) * (top - b) for (a, b), top in zip(xs, tops, strict=True))
    assert summary.hypervolume == pytest.approx(area) and len(xs) > 1
    # two workers shared the trials, in the first generation (20) and after the searcher
    # waited for it to end (engine.ray.actor_keeper: Tune would have gone serial)
    workers = trials.sort_values("started_at")["worker"]
    assert workers[:20].nunique() == 2 and workers[20:].nunique() == 2


def test_failing_trials_are_recorded_and_do_not_stop_the_run(tmp_path: Path) -> None:
    data = yaml.safe_load(Path("configs/vectorize.yaml").read_text())
    data["objective"]["options"] = {
        "max_side": 32,
        "images": [str(SAMPLES / "logo.png"), str(SAMPLES / "coffee.png")],
    }
    # color_precision 0 is outside what vtracer accepts: those trials fail
    data["space"]["color_precision"] = {"type": "categorical", "choices": [0, 6]}
    data.update(searcher={"name": "random"}, budget={"trials": 12}, concurrency=2)
    summary = explore(parse_spec(data), tmp_path, runner=run_on_tune, progress=False)
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    failed = trials[trials["status"] == "failed"]
    assert len(trials) == 12
    assert 0 < len(failed) < 12 == summary.trials
    assert (failed["param.color_precision"] == 0).all()
    assert failed["error"].str.contains("color_precision").all()
    assert summary.completed + summary.infeasible == 12 - len(failed)


def test_auto_runs_on_tune_at_concurrency_2(tmp_path: Path) -> None:
    """`auto` through all three phases with two trials in flight: the budget is kept, no
    trial runs twice, and every trial lies in the space."""
    spec = zdt1("auto", trials=24, concurrency=2)
    phases = {"startup": 4, "model_until": 10, "population_size": 6}
    f1, f2 = spec.metrics  # a reference 24 trials reach into whatever order two workers tell them
    spec = spec.model_copy(
        update={
            "searcher": spec.searcher.model_copy(update={"options": phases}),
            "metrics": [f1, f2.model_copy(update={"reference": 10.0})],
        }
    )
    summary = explore(spec, tmp_path, runner=run_on_tune, progress=False)
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(trials) == 24 == summary.trials and trials["trial_id"].is_unique
    space = spec.search_space()
    params = trials[[c for c in trials if c.startswith("param.")]].rename(columns=lambda c: c[6:])
    assert all(space.contains({**space.fixed, **row}) for row in params.to_dict("records"))
    assert summary.hypervolume > 0
