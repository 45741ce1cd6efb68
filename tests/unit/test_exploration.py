"""Exploration bookkeeping without Ray: budgets, failures, journal and resume by replay."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.offline import Exploration, ResumeError, TrialResult
from engine.spec import parse_spec


def spec(searcher: str = "tpe", trials: int = 12, options: dict[str, Any] | None = None) -> Any:
    return parse_spec(
        {
            "name": "toy",
            "objective": {"ref": "objectives.synthetic:ZDT1"},
            "metrics": [
                {"name": "f1", "direction": "min", "reference": 1.1},
                {"name": "f2", "direction": "min", "reference": 10.0, "constraint": "<= 4.0"},
            ],
            "searcher": {"name": searcher, "options": options or {}},
            "budget": {"trials": trials},
            "seed": 3,
            "preference": {"f1": 1.0},
        }
    )


def zdt1(params: dict[str, Any]) -> TrialResult:
    """ZDT1 by hand, failing when x0 < 0.15 so failures happen."""
    x = [params[f"x{i}"] for i in range(6)]
    if x[0] < 0.15:
        return TrialResult(None, "ValueError: x0 too small")
    g = 1 + 9 * sum(x[1:]) / 5
    return TrialResult({"f1": x[0], "f2": g * (1 - math.sqrt(x[0] / g))})


def run(x: Exploration, limit: int | None = None) -> None:
    done = 0
    while not x.done() and (limit is None or done < limit):
        trial = x.next_trial()
        assert trial is not None
        x.record(trial.trial_id, zdt1(trial.params))
        done += 1


def test_budget_failures_and_parquet(tmp_path: Path) -> None:
    x = Exploration(spec(searcher="random", trials=30), tmp_path)
    run(x)
    summary = x.write()
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(trials) == 30 == summary.trials
    failed = trials[trials.status == "failed"]
    assert (failed["error"].str.contains("x0 too small")).all()
    assert summary.failed == len(failed) > 0
    infeasible = trials[trials.status == "infeasible"]
    assert (infeasible["metric.f2"] > 4.0).all() and len(infeasible) > 0
    assert trials["hypervolume"].is_monotonic_increasing
    # the front and its hypervolume, against a brute force over the feasible trials
    ok = trials[trials.status == "completed"]
    points = list(zip(ok["metric.f1"], ok["metric.f2"], strict=True))
    brute = {
        tid
        for tid, p in zip(ok["trial_id"], points, strict=True)
        if not any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in points)
    }
    front = pd.read_parquet(tmp_path / "front.parquet")
    assert set(front["trial_id"]) == brute and len(front) == len(brute) > 1
    staircase, f2_best = 0.0, 10.0  # sweep by f1 against the reference point (1.1, 10)
    for f1, f2 in sorted(points):
        if f2 < f2_best:
            staircase += (1.1 - f1) * (f2_best - f2)
            f2_best = f2
    assert summary.hypervolume == pytest.approx(staircase) and staircase > 0
    assert trials["hypervolume"].iloc[-1] == pytest.approx(staircase)
    assert front["preferred"].sum() == 1
    assert front.loc[front["preferred"], "metric.f1"].iloc[0] == front["metric.f1"].min()


def test_bad_metrics_are_failures_not_crashes(tmp_path: Path) -> None:
    x = Exploration(spec(trials=3), tmp_path)
    reports = [
        TrialResult({"f1": float("nan"), "f2": 1.0}),
        TrialResult({"f1": 0.5}),
        TrialResult({"f1": "fast", "f2": 1.0}),  # type: ignore[dict-item]
    ]
    errors = []
    for report in reports:
        trial = x.next_trial()
        assert trial is not None
        errors.append(x.record(trial.trial_id, report)["error"])
    assert "nan" in errors[0] and "f2" in errors[1] and "not a number" in errors[2]
    assert x.next_trial() is None and x.done()


# auto: the crash falls in its GP phase, and the resumed run goes on into NSGA-II
RESUMED = {"tpe": {}, "auto": {"startup": 3, "model_until": 7, "population_size": 4}}


@pytest.mark.parametrize("searcher", RESUMED)
def test_resume_after_a_crash_replays_to_the_same_exploration(tmp_path: Path, searcher: str) -> None:
    def again() -> Any:
        return spec(searcher, options=RESUMED[searcher])

    whole = Exploration(again(), tmp_path / "whole")
    run(whole)

    first = Exploration(again(), tmp_path / "crashed")
    run(first, limit=5)
    first.close()  # a crash: nothing written but the journal
    with pytest.raises(ResumeError, match="--resume"):
        Exploration(again(), tmp_path / "crashed")
    resumed = Exploration(again(), tmp_path / "crashed", resume=True)
    assert len(resumed.results) == 5
    assert resumed.run_id == first.run_id != whole.run_id  # publishing goes on under one run
    run(resumed)
    cols = ["trial_id", "status", "metric.f1", "metric.f2"]
    pd.testing.assert_frame_equal(resumed.table()[cols], whole.table()[cols])


def test_trials_running_at_the_crash_are_run_first_and_never_twice(tmp_path: Path) -> None:
    x = Exploration(spec(searcher="random"), tmp_path)
    running = [x.next_trial(), x.next_trial()]
    assert all(running)
    # crash with two trials in flight and a torn last journal line
    with (tmp_path / "events.jsonl").open("a") as f:
        f.write('{"kind": "result", "trial_')
    x.close()
    resumed = Exploration(spec(searcher="random"), tmp_path, resume=True)
    again = [resumed.next_trial(), resumed.next_trial()]
    assert [t.params for t in again if t] == [t.params for t in running if t]
    for t in again:
        assert t is not None
        resumed.record(t.trial_id, zdt1(t.params))
    run(resumed)
    ids = resumed.table()["trial_id"]
    assert len(ids) == 12 and ids.is_unique


def test_resume_with_another_spec_is_refused(tmp_path: Path) -> None:
    run(Exploration(spec(), tmp_path), limit=2)
    with pytest.raises(ResumeError, match="different spec"):
        Exploration(spec(searcher="random"), tmp_path, resume=True)
    # a larger budget is allowed: it continues the same exploration
    bigger = Exploration(spec(trials=14), tmp_path, resume=True)
    run(bigger)
    assert len(bigger.results) == 14
