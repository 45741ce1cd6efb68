"""One run of the Pareto benchmark: a method on a problem with one seed, as its hypervolume
after each evaluation. Ours run through the engine; the raw peers are plain Optuna and pymoo
loops that never touch it. Each problem is defined once, as a spec, for both."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import ElementwiseProblem, Problem
from pymoo.optimize import minimize
from pymoo.problems import get_problem
from threadpoolctl import threadpool_limits

import objectives.synthetic
from benchmarks.harness import ROOT
from engine.offline import HypervolumeTracker, explore, run_local
from engine.spec import ExperimentSpec, MetricSpec, Space, parse_spec
from objectives.images import DEFAULT_IMAGES

SYNTHETIC = {
    "zdt1": "ZDT1", "zdt2": "ZDT2", "zdt3": "ZDT3", "dtlz2": "DTLZ2", "dtlz4": "DTLZ4", "wfg2": "WFG2",
}  # fmt: skip
IMAGE_PROBLEMS = ("vectorize", "codec")
PROBLEMS = (*SYNTHETIC, *IMAGE_PROBLEMS)
OURS = ("auto", "tpe", "nsga2", "pymoo-nsga2", "random", "qmc", "gp")
RAW = ("optuna-tpe", "optuna-nsga2", "pymoo-raw")
PAIRS = (("tpe", "optuna-tpe"), ("nsga2", "optuna-nsga2"), ("pymoo-nsga2", "pymoo-raw"))
SEARCHER_OPTIONS: dict[str, dict[str, Any]] = {
    "nsga2": {"population_size": 20},
    "pymoo-nsga2": {"pop_size": 20},
}
POP_SIZE = 20
# Vectorize at 64 px on 3 images: a default evaluation gives quality 0.76, 6 ms, 22 kB, and
# 100 random points stayed below 6 ms and 67 kB, so every sane point beats this reference.
VECTORIZE_METRICS = [
    {"name": "quality", "direction": "max", "unit": "ssim", "reference": 0.0},
    {"name": "speed", "direction": "min", "unit": "ms", "reference": 50.0},
    {"name": "cost", "direction": "min", "unit": "bytes", "reference": 100_000.0},
]
# Codec at 64 px on 3 images: 100 random points gave 0.1-47 ms and 360-3,600 bytes.
CODEC_METRICS = [
    {"name": "quality", "direction": "max", "unit": "ssim", "reference": 0.0},
    {"name": "speed", "direction": "min", "unit": "ms", "reference": 50.0},
    {"name": "cost", "direction": "min", "unit": "bytes", "reference": 5_000.0},
]
# reference box volumes: the image problems' hypervolumes are shown as fractions of them
BOXES = {"vectorize": 1.0 * 50.0 * 100_000.0, "codec": 1.0 * 50.0 * 5_000.0}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def first_images(n: int) -> list[str]:
    """Paths of the first `n` bundled samples (objectives.images resolves names the same way)."""
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [str(root / name) for name in DEFAULT_IMAGES[:n]]


def problem_dict(problem: str) -> dict[str, Any]:
    """Objective, space and metrics of `problem` as spec fields."""
    options = {"max_side": 64, "images": first_images(3)}
    if problem == "vectorize":
        config = yaml.safe_load((ROOT / "configs" / "vectorize.yaml").read_text())
        return {
            "objective": {"ref": "objectives.vectorize:Vectorize", "options": options},
            "space": config["space"],
            "metrics": VECTORIZE_METRICS,
        }
    if problem == "codec":  # the space is the objective's own (objectives.codec.Codec.space)
        return {"objective": {"ref": "objectives.codec:Codec", "options": options}, "metrics": CODEC_METRICS}
    cls = getattr(objectives.synthetic, SYNTHETIC[problem])
    metrics = [
        {"name": name, "direction": "min", "reference": ref}
        for name, ref in zip(cls.metrics, cls.reference_point, strict=True)
    ]
    return {"objective": {"ref": f"objectives.synthetic:{cls.__name__}"}, "metrics": metrics}


def experiment(problem: str, searcher: str, seed: int, trials: int) -> ExperimentSpec:
    """The spec our engine runs; the raw peers read their objective, space and metrics from it."""
    data = problem_dict(problem)
    return parse_spec(
        {
            **data,
            "name": f"{problem}-{searcher}-{seed}",
            "searcher": {"name": searcher, "options": SEARCHER_OPTIONS.get(searcher, {})},
            "budget": {"trials": trials},
            "concurrency": 1,
            "seed": seed,
            "preference": {m["name"]: 1.0 for m in data["metrics"]},
        },
        source=f"benchmark {problem}",
    )


@dataclass(frozen=True)
class Job:
    problem: str
    method: str
    seed: int
    evals: int


@dataclass(frozen=True)
class Outcome:
    job: Job
    history: tuple[float, ...]  # hypervolume after each evaluation
    seconds: float


def run_job(job: Job) -> Outcome:
    """Run one job single-threaded: two pool workers share the two cores."""
    runner = run_ours if job.method in OURS else RAW_RUNNERS[job.method]
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        if job.method in ("gp", "auto"):  # auto runs Optuna's GP in its second phase
            single_thread_torch()
        history = runner(job)
    return Outcome(job, tuple(float(v) for v in history), time.perf_counter() - start)


def single_thread_torch() -> None:
    """GPSampler computes with torch, whose thread pool threadpoolctl does not limit."""
    import torch

    torch.set_num_threads(1)


def run_ours(job: Job) -> np.ndarray:
    """Our searcher through the engine's bookkeeping (journal, Parquet), without Ray."""
    spec = experiment(job.problem, job.method, job.seed, job.evals)
    with tempfile.TemporaryDirectory(prefix="pareto-") as tmp:
        explore(spec, out_dir=Path(tmp), runner=run_local, progress=False)
        return pd.read_parquet(Path(tmp) / "trials.parquet")["hypervolume"].to_numpy()


def raw_sampler(method: str, seed: int) -> optuna.samplers.BaseSampler:
    """Configured exactly as engine/offline/searchers/optuna_searchers.py configures them."""
    if method == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=POP_SIZE)


def run_raw_optuna(job: Job) -> np.ndarray:
    """A plain Optuna ask/tell loop calling the objective directly."""
    spec = experiment(job.problem, "random", job.seed, job.evals)
    objective, space, metrics = spec.objective.build(), spec.search_space(), spec.metrics
    study = optuna.create_study(
        directions=["minimize" if m.direction == "min" else "maximize" for m in metrics],
        sampler=raw_sampler(job.method, job.seed),
    )
    distributions = space.optuna_distributions()
    tracker = HypervolumeTracker(metrics)
    history = []
    for _ in range(job.evals):
        trial = study.ask(distributions)
        try:
            values = objective.evaluate({**space.fixed, **trial.params})
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [values[m.name] for m in metrics])
            tracker.add(values)
        history.append(tracker.value)
    return np.asarray(history)


class Recorded(Problem):
    """Delegates to a pymoo problem and keeps every F row in evaluation order."""

    def __init__(self, inner: Problem) -> None:
        super().__init__(n_var=inner.n_var, n_obj=inner.n_obj, xl=inner.xl, xu=inner.xu)
        self.inner = inner
        self.rows: list[np.ndarray] = []

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        f = np.asarray(self.inner.evaluate(x, return_values_of=["F"]), dtype=float)
        self.rows.extend(f)
        out["F"] = f


class UnitCubeObjective(ElementwiseProblem):
    """An objective over [0, 1]^d decoded by Space.from_unit, as our pymoo wrapper encodes it."""

    def __init__(self, objective: Any, space: Space, metrics: Sequence[MetricSpec]) -> None:
        super().__init__(n_var=len(space.free), n_obj=len(metrics), xl=0.0, xu=1.0)
        self.objective, self.space, self.metrics = objective, space, list(metrics)

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        try:
            values = self.objective.evaluate({**self.space.fixed, **self.space.from_unit(x)})
            out["F"] = [values[m.name] * m.sign() for m in self.metrics]
        except Exception:  # outside the reference point: ignored by the hypervolume
            out["F"] = [1e12] * len(self.metrics)


def pymoo_problem(problem: str, spec: ExperimentSpec) -> Problem:
    """pymoo's own ZDT/DTLZ/WFG (6 variables, as objectives.synthetic), or an image problem on the cube."""
    if problem in IMAGE_PROBLEMS:
        return UnitCubeObjective(spec.objective.build(), spec.search_space(), spec.metrics)
    kwargs = {} if problem.startswith("zdt") else {"n_obj": len(spec.metrics)}
    return get_problem(problem, n_var=objectives.synthetic.N_VAR, **kwargs)


def run_raw_pymoo(job: Job) -> np.ndarray:
    """pymoo.optimize.minimize with NSGA-II; hypervolume from the recorded evaluation order."""
    spec = experiment(job.problem, "random", job.seed, job.evals)
    recorded = Recorded(pymoo_problem(job.problem, spec))
    minimize(recorded, NSGA2(pop_size=POP_SIZE), ("n_eval", job.evals), seed=job.seed, verbose=False)
    tracker = HypervolumeTracker(spec.metrics)
    history = []
    for row in recorded.rows[: job.evals]:
        tracker.add({m.name: v * m.sign() for m, v in zip(spec.metrics, row, strict=True)})
        history.append(tracker.value)
    return np.asarray(history)


RAW_RUNNERS: dict[str, Callable[[Job], np.ndarray]] = {
    "optuna-tpe": run_raw_optuna,
    "optuna-nsga2": run_raw_optuna,
    "pymoo-raw": run_raw_pymoo,
}
