"""Pareto benchmark: our searchers against their raw peers, engine overhead, parallel speed-up.

    .venv/bin/python benchmarks/pareto.py [--quick] [--seeds N] [--problems zdt1 vectorize ...]
                                          [--out benchmarks/results/pareto.md]

1. Hypervolume after 100/200/500 evaluations on ZDT1-3, DTLZ2 and a small vectorize, for
   each of our searchers (through the engine's bookkeeping, `explore(runner=run_local)`) and
   for raw Optuna / pymoo loops that never touch the engine. Same spaces, same references,
   same hypervolume code (engine.offline.pareto) for all.
2. Per-trial cost of Ray Tune, of our local loop and of a raw Optuna loop, on a trivial
   objective: the slope between a 100- and a 400-trial run removes fixed start-up costs.
3. Wall time of the real vectorize exploration at concurrency 1 and 2 on Ray.

Prints a Markdown report and writes it to `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pymoo
import yaml
from optuna.trial import TrialState
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import ElementwiseProblem, Problem
from pymoo.optimize import minimize
from pymoo.problems import get_problem
from reporting import arguments, command_line, cpu_model, load_text, log, md_row, notes_section, write_report
from scipy.stats import mannwhitneyu
from threadpoolctl import threadpool_limits

import objectives.synthetic
from engine.offline.explore import explore, run_local
from engine.offline.pareto import HypervolumeTracker
from engine.ray import run_on_tune
from engine.spec.config import Budget, ExperimentSpec, MetricSpec, SearcherSpec, load_spec, parse_spec
from engine.spec.space import Space
from objectives.images import DEFAULT_IMAGES

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = {"zdt1": "ZDT1", "zdt2": "ZDT2", "zdt3": "ZDT3", "dtlz2": "DTLZ2"}
PROBLEMS = (*SYNTHETIC, "vectorize")
OURS = ("tpe", "nsga2", "pymoo-nsga2", "random", "qmc", "gp")
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
VECTORIZE_BOX = 1.0 * 50.0 * 100_000.0  # reference box volume: vectorize HV is shown as a fraction

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class SpeedupCase:
    """One vectorize workload timed at concurrency 1 and 2."""

    max_side: int | None  # None: configs/vectorize.yaml as shipped
    trials: int

    def label(self, spec: ExperimentSpec) -> str:
        side = spec.objective.options.get("max_side")
        shipped = " (configs/vectorize.yaml as shipped)" if self.max_side is None else ""
        return f"max_side {side}, {self.trials} trials{shipped}"


@dataclass(frozen=True)
class Plan:
    """What to run; `notes` lists every cut below the brief's full design."""

    problems: tuple[str, ...]
    seeds: tuple[int, ...]
    checkpoints: tuple[int, ...] = (100, 200, 500)
    gp_evals: int = 100
    gp_seeds: int = 5  # at most this many seeds for GP on the synthetic problems
    gp_vectorize_seeds: int = 5  # and on vectorize, where each GP run takes ~10 minutes
    overhead_budgets: tuple[int, int] = (100, 400)
    overhead_repeats: int = 3
    # the shipped config (a short and a longer run), and short 128 px trials (~60 ms each)
    speedup_cases: tuple[SpeedupCase, ...] = (
        SpeedupCase(None, 160),
        SpeedupCase(None, 320),
        SpeedupCase(128, 400),
    )
    speedup_repeats: int = 3  # a median of 3 shrugs off one disturbed run
    notes: tuple[str, ...] = ()

    def seeds_for(self, problem: str, method: str) -> tuple[int, ...]:
        if method != "gp":
            return self.seeds
        return self.seeds[: self.gp_vectorize_seeds if problem == "vectorize" else self.gp_seeds]

    def evals_for(self, method: str) -> int:
        return self.gp_evals if method == "gp" else self.checkpoints[-1]


def full_plan(problems: Sequence[str], n_seeds: int) -> Plan:
    """The default run, cut to finish within ~45 minutes on 2 cores shared with other work.

    100 GP evaluations took 70-230 s on ZDT/DTLZ2 and 600 s (alone) to over 20 minutes
    (machine busy) on vectorize (3 objectives, categorical parameters); everything else
    together takes ~25 minutes of CPU.
    """
    plan = Plan(problems=tuple(problems), seeds=tuple(range(n_seeds)), gp_seeds=2, gp_vectorize_seeds=0)
    measured = (
        "GP on vectorize, measured once outside this run with the same job code (seed 0, alone on "
        "the machine): HV@100 = 0.7734 in 602 s."
    )
    notes = (*gp_notes(plan), measured) if "vectorize" in plan.problems else gp_notes(plan)
    return replace(plan, notes=notes)


def gp_notes(plan: Plan) -> tuple[str, ...]:
    notes = [f"GP (Optuna GPSampler) runs to {plan.gp_evals} evaluations only: its cost grows as O(n^3)."]
    if plan.gp_seeds < len(plan.seeds):
        notes.append(
            f"GP runs {plan.gp_seeds} seed(s) on the synthetic problems instead of {len(plan.seeds)} "
            "(70-230 s per run)."
        )
    if "vectorize" in plan.problems and plan.gp_vectorize_seeds == 0:
        notes.append(
            "GP is not run on vectorize: 100 evaluations take 10 minutes alone and over 20 minutes "
            "when the machine is busy, more than the whole run can afford."
        )
    elif "vectorize" in plan.problems and plan.gp_vectorize_seeds < len(plan.seeds):
        notes.append(
            f"GP runs {plan.gp_vectorize_seeds} seed(s) on vectorize instead of {len(plan.seeds)} "
            "(~10 min per run)"
            + (", so its IQR there is no spread at all." if plan.gp_vectorize_seeds == 1 else ".")
        )
    return tuple(notes)


def quick_plan(problems: Sequence[str], n_seeds: int) -> Plan:
    """A smoke run of a minute or two: fewer evaluations, seeds and repeats everywhere."""
    plan = Plan(
        problems=tuple(problems),
        seeds=tuple(range(n_seeds)),
        checkpoints=(25, 50),
        gp_evals=25,
        gp_seeds=1,
        gp_vectorize_seeds=0,
        overhead_budgets=(30, 120),
        overhead_repeats=1,
        speedup_cases=(SpeedupCase(None, 8),),
        speedup_repeats=1,
    )
    smoke = "--quick smoke run: 25/50 evaluations, small overhead and speed-up runs; not for quoting."
    return replace(plan, notes=(smoke, *gp_notes(plan)))


# -- problems: one definition shared by our searchers and the raw peers ------------------


def first_images(n: int) -> list[str]:
    """Paths of the first `n` bundled samples (objectives.images resolves names the same way)."""
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [str(root / name) for name in DEFAULT_IMAGES[:n]]


def problem_dict(problem: str) -> dict[str, Any]:
    """Objective, space and metrics of `problem` as spec fields."""
    if problem == "vectorize":
        config = yaml.safe_load((ROOT / "configs" / "vectorize.yaml").read_text())
        return {
            "objective": {
                "ref": "objectives.vectorize:Vectorize",
                "options": {"max_side": 64, "images": first_images(3)},
            },
            "space": config["space"],
            "metrics": VECTORIZE_METRICS,
        }
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


# -- one job: a hypervolume history of one method on one problem with one seed ----------


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
        if job.method == "gp":
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
    """Configured exactly as engine/searchers/optuna_searchers.py configures them."""
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
    """pymoo's own ZDT/DTLZ (6 variables, as objectives.synthetic), or vectorize on the cube."""
    if problem == "vectorize":
        return UnitCubeObjective(spec.objective.build(), spec.search_space(), spec.metrics)
    kwargs = {"n_obj": len(spec.metrics)} if problem.startswith("dtlz") else {}
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


def jobs_for(plan: Plan) -> list[Job]:
    """Every (problem, method, seed), slowest first so the two workers finish together."""
    jobs = [
        Job(problem, method, seed, plan.evals_for(method))
        for problem in plan.problems
        for method in (*OURS, *RAW)
        for seed in plan.seeds_for(problem, method)
    ]
    return sorted(jobs, key=lambda j: (j.method != "gp", j.problem != "vectorize"))


def run_jobs(jobs: Sequence[Job], workers: int = 2) -> list[Outcome]:
    """Run jobs in a process pool, printing progress to stderr."""
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            j = outcome.job
            log(
                f"[{len(outcomes)}/{len(jobs)}] {j.problem} {j.method} seed={j.seed}: "
                f"{outcome.seconds:.1f}s (elapsed {time.perf_counter() - start:.0f}s)"
            )
    return outcomes


# -- part 1 tables ------------------------------------------------------------------------


def hv_frame(outcomes: Sequence[Outcome], checkpoints: Sequence[int]) -> pd.DataFrame:
    """One row per job with its hypervolume at each checkpoint (NaN past its budget)."""
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"problem": o.job.problem, "method": o.job.method, "seed": o.job.seed}
        scale = VECTORIZE_BOX if o.job.problem == "vectorize" else 1.0
        for c in checkpoints:
            row[f"HV@{c}"] = o.history[c - 1] / scale if c <= len(o.history) else np.nan
        row["seconds"] = o.seconds
        rows.append(row)
    return pd.DataFrame(rows)


def cell(values: np.ndarray) -> str:
    """Median and inter-quartile range; a dash when the method did not get that far."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return "—"
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.4f} [{q1:.4f}, {q3:.4f}]"


def hv_table(frame: pd.DataFrame, checkpoints: Sequence[int]) -> list[str]:
    header = ["problem", "searcher", "kind", "seeds"] + [f"HV@{c}" for c in checkpoints] + ["s/run"]
    lines = [md_row(header), md_row(["---"] * len(header))]
    for (problem, method), group in frame.groupby(["problem", "method"], sort=False):
        kind = "ours (engine)" if method in OURS else "raw peer"
        cells = [cell(group[f"HV@{c}"].to_numpy(dtype=float)) for c in checkpoints]
        seconds = f"{group['seconds'].median():.1f}"
        lines.append(md_row([problem, f"`{method}`", kind, str(len(group)), *cells, seconds]))
    return lines


def order_frame(frame: pd.DataFrame, problems: Sequence[str]) -> pd.DataFrame:
    methods = [*OURS, *RAW]
    return frame.assign(
        _p=frame["problem"].map(list(problems).index), _m=frame["method"].map(methods.index)
    ).sort_values(["_p", "_m", "seed"])


def iqr(values: np.ndarray) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


@dataclass(frozen=True)
class Comparison:
    """Ours vs its raw peer at one budget: is the gap bigger than seed-to-seed noise?"""

    ours: np.ndarray
    raw: np.ndarray

    @property
    def diff(self) -> float:
        return float(np.median(self.ours) - np.median(self.raw))

    @property
    def in_spread(self) -> float:
        """The median difference in pooled IQRs (sqrt of the mean squared IQR)."""
        spread = float(np.sqrt((iqr(self.ours) ** 2 + iqr(self.raw) ** 2) / 2))
        if spread > 0:
            return self.diff / spread
        return 0.0 if self.diff == 0 else float(np.copysign(np.inf, self.diff))

    @property
    def p_value(self) -> float:
        if np.array_equal(np.sort(self.ours), np.sort(self.raw)):
            return 1.0  # identical samples: scipy would warn about all-tied ranks
        return float(mannwhitneyu(self.ours, self.raw, alternative="two-sided").pvalue)

    @property
    def verdict(self) -> str:
        if self.p_value > 0.05 or abs(self.in_spread) <= 1.0:
            return "same within noise"
        return "ours better" if self.diff > 0 else "**raw better**"

    def cells(self) -> list[str]:
        medians = [f"{np.median(self.ours):.4f}", f"{np.median(self.raw):.4f}"]
        stats = [f"{self.diff:+.4f}", f"{self.in_spread:+.2f}", f"{self.p_value:.3f}"]
        return [*medians, *stats, self.verdict]


def pair_table(frame: pd.DataFrame, problems: Sequence[str], at: int) -> list[str]:
    header = ["problem", "ours vs raw", f"median ours @{at}", f"median raw @{at}", "Δ", "Δ / pooled IQR"]
    header += ["Mann-Whitney p", "verdict"]
    lines = [md_row(header), md_row(["---"] * len(header))]
    for problem in problems:
        for ours_name, raw_name in PAIRS:
            comparison = Comparison(pick(frame, problem, ours_name, at), pick(frame, problem, raw_name, at))
            if len(comparison.ours) and len(comparison.raw):
                pair = f"`{ours_name}` vs `{raw_name}`"
                lines.append(md_row([problem, pair, *comparison.cells()]))
    return lines


def pick(frame: pd.DataFrame, problem: str, method: str, at: int) -> np.ndarray:
    rows = frame[(frame["problem"] == problem) & (frame["method"] == method)]
    return rows[f"HV@{at}"].dropna().to_numpy(dtype=float)


# -- part 2: per-trial overhead on a trivial objective ------------------------------------


def trivial_spec(trials: int, concurrency: int = 1) -> ExperimentSpec:
    return parse_spec(
        {
            "name": f"trivial-{trials}",
            "objective": {"ref": "objectives.synthetic:Trivial"},
            "metrics": [
                {"name": "f1", "direction": "min", "reference": 1.1},
                {"name": "f2", "direction": "min", "reference": 1.1},
            ],
            "searcher": {"name": "random"},
            "budget": {"trials": trials},
            "concurrency": concurrency,
            "preference": {"f1": 1.0, "f2": 1.0},
        }
    )


def time_explore(spec: ExperimentSpec, backend: str) -> float:
    """Wall time of one exploration in a fresh folder, checked to have run its whole budget."""
    with tempfile.TemporaryDirectory(prefix="pareto-time-") as tmp:
        start = time.perf_counter()
        runner = run_on_tune if backend == "ray" else run_local
        summary = explore(spec, out_dir=Path(tmp), runner=runner, progress=False)
        elapsed = time.perf_counter() - start
    if summary.trials != spec.budget.trials or summary.failed:
        raise RuntimeError(
            f"{spec.name} on {backend}: {summary.trials} trials ({summary.failed} failed), "
            f"expected {spec.budget.trials} completed; the timing would be meaningless"
        )
    return elapsed


def time_raw_loop(trials: int) -> float:
    """A raw Optuna RandomSampler loop on Trivial: the floor any engine adds to."""
    objective = objectives.synthetic.Trivial()
    distributions: dict[str, optuna.distributions.BaseDistribution] = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0)
    }
    start = time.perf_counter()
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    for _ in range(trials):
        trial = study.ask(distributions)
        values = objective.evaluate(trial.params)
        study.tell(trial, [values["f1"], values["f2"]])
    return time.perf_counter() - start


@dataclass(frozen=True)
class Slope:
    """Fixed cost and per-trial cost from the median times of a small and a large run."""

    path: str
    small: float
    large: float
    budgets: tuple[int, int]

    @property
    def per_trial_ms(self) -> float:
        return 1000 * (self.large - self.small) / (self.budgets[1] - self.budgets[0])

    @property
    def fixed_s(self) -> float:
        return self.small - self.budgets[0] * self.per_trial_ms / 1000


def measure_overhead(plan: Plan) -> list[Slope]:
    small, large = plan.overhead_budgets
    timers: dict[str, Callable[[int], float]] = {
        "Ray Tune (`runner=run_on_tune`)": lambda n: time_explore(trivial_spec(n), "ray"),
        "our loop, no Ray (`runner=run_local`)": lambda n: time_explore(trivial_spec(n), "local"),
        "raw Optuna loop": time_raw_loop,
    }
    slopes = []
    for path, timer in timers.items():
        timer(small)  # warm-up, not timed: first imports, Ray worker start-up
        times: dict[int, list[float]] = {small: [], large: []}
        for r in range(plan.overhead_repeats):
            for n in (small, large):
                times[n].append(timer(n))
                log(f"overhead {path} {n} trials, run {r + 1}: {times[n][-1]:.2f}s")
        slopes.append(
            Slope(path, statistics.median(times[small]), statistics.median(times[large]), (small, large))
        )
    return slopes


def overhead_table(slopes: Sequence[Slope]) -> list[str]:
    small, large = slopes[0].budgets
    header = ["path", f"T{small} (s)", f"T{large} (s)", "fixed cost (s)", "ms / trial (slope)"]
    lines = [md_row(header), md_row(["---"] * len(header))]
    for s in slopes:
        lines.append(
            md_row([s.path, f"{s.small:.2f}", f"{s.large:.2f}", f"{s.fixed_s:.2f}", f"{s.per_trial_ms:.2f}"])
        )
    return lines


# -- part 3: vectorize at concurrency 1 and 2 ---------------------------------------------


def vectorize_spec(case: SpeedupCase, concurrency: int) -> ExperimentSpec:
    """configs/vectorize.yaml with a free searcher (random), no wall-time limit."""
    spec = load_spec(ROOT / "configs" / "vectorize.yaml")
    objective = spec.objective
    if case.max_side is not None:
        objective = objective.model_copy(update={"options": {**objective.options, "max_side": case.max_side}})
    return spec.model_copy(
        update={
            "objective": objective,
            "searcher": SearcherSpec(name="random"),
            "budget": Budget(trials=case.trials),
            "concurrency": concurrency,
        }
    )


Walls = dict[SpeedupCase, dict[int, list[float]]]


def measure_speedup(plan: Plan) -> Walls:
    walls: Walls = {case: {1: [], 2: []} for case in plan.speedup_cases}
    for case, by_concurrency in walls.items():
        for r in range(plan.speedup_repeats):
            for concurrency, times in by_concurrency.items():
                times.append(time_explore(vectorize_spec(case, concurrency), "ray"))
                log(f"vectorize {case} concurrency {concurrency}, run {r + 1}: {times[-1]:.1f}s")
    return walls


def speedup_ratio(by_concurrency: dict[int, list[float]]) -> float:
    return statistics.median(by_concurrency[1]) / statistics.median(by_concurrency[2])


def speedup_table(walls: Walls) -> list[str]:
    lines = [
        md_row(["workload", "concurrency 1 runs (s)", "concurrency 2 runs (s)", "speed-up (medians)"]),
        md_row(["---"] * 4),
    ]
    for case, by_concurrency in walls.items():
        runs = [", ".join(f"{t:.1f}" for t in by_concurrency[c]) for c in (1, 2)]
        label = case.label(vectorize_spec(case, 1))
        lines.append(md_row([label, *runs, f"{speedup_ratio(by_concurrency):.2f}x"]))
    return lines


# -- report ---------------------------------------------------------------------------------


def header(plan: Plan, started: datetime.datetime) -> list[str]:
    import ray

    return [
        "# Pareto benchmark",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} (local time)",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
        f"- versions: optuna {optuna.__version__}, pymoo {pymoo.__version__}, ray {ray.__version__}, "
        f"python {sys.version.split()[0]}",
        f"- command: `{command_line()}`",
        f"- seeds: {', '.join(map(str, plan.seeds))}; problems: {', '.join(plan.problems)}",
        f"- load average (1/5/15 min) at start: {load_text()} (other processes share these cores)",
    ]


def part1_section(frame: pd.DataFrame, plan: Plan) -> list[str]:
    at = plan.checkpoints[-1]
    return [
        "",
        f"## 1. Hypervolume after {', '.join(map(str, plan.checkpoints))} evaluations",
        "",
        "Median (inter-quartile range) over seeds; higher is better. `ours` run through "
        "`engine.offline.explore.explore(runner=run_local)` (journal, Parquet, no Ray); raw peers call the "
        "objective in a plain Optuna ask/tell loop or `pymoo.optimize.minimize`. "
        "Reference points: ZDT/DTLZ 1.1 per objective; vectorize quality 0 (max), speed 50 ms, "
        "cost 100 000 bytes, its hypervolume divided by that box (1 x 50 x 100 000) to read as a "
        "fraction. s/run is the median wall time of one run (two runs share the two cores).",
        "",
        *hv_table(frame, plan.checkpoints),
        "",
        f"### Ours vs raw peer at {at} evaluations",
        "",
        "Δ = median(ours) - median(raw); pooled IQR = sqrt((IQR_ours² + IQR_raw²) / 2). Verdict: "
        '"same within noise" when the two-sided Mann-Whitney U p > 0.05 or |Δ| ≤ 1 pooled IQR.',
        "",
        *pair_table(frame, plan.problems, at),
    ]


def part2_section(slopes: Sequence[Slope], plan: Plan) -> list[str]:
    small, large = plan.overhead_budgets
    by_path = {s.path: s for s in slopes}
    tune = next(s for p, s in by_path.items() if p.startswith("Ray Tune"))
    raw = by_path["raw Optuna loop"]
    overhead = tune.per_trial_ms - raw.per_trial_ms
    verdict = "meets" if overhead <= 20 else "misses"
    return [
        "",
        "## 2. Engine overhead per trial (Trivial objective, random searcher, concurrency 1)",
        "",
        f"Median of {plan.overhead_repeats} runs each, after one untimed warm-up run. "
        f"Per-trial cost = (T{large} - T{small}) / {large - small}; "
        f"fixed cost = T{small} - {small} x per-trial cost.",
        "",
        *overhead_table(slopes),
        "",
        f"**Tune overhead = Tune slope - raw-loop slope = {overhead:.1f} ms/trial** "
        f"({verdict} the ≤ 20 ms target).",
    ]


def part3_section(walls: Walls, plan: Plan) -> list[str]:
    verdicts = []
    for case in (c for c in walls if c.max_side is None):
        ratio = speedup_ratio(walls[case])
        verdict = "meets" if ratio >= 1.7 else "misses"
        verdicts.append(f"- **{ratio:.3f}x at {case.trials} trials** ({verdict} the ≥ 1.7x target)")
    return [
        "",
        "## 3. Vectorize wall time, concurrency 1 vs 2 (Ray Tune)",
        "",
        f"11 bundled images, searcher `random`, no wall-time limit, `runner=run_on_tune`, one CPU per "
        f"trial; {plan.speedup_repeats} runs each, median reported. Wall time includes Tune's "
        "start-up and the second worker's warm-up (importing and loading the images).",
        "",
        *speedup_table(walls),
        "",
        "Speed-up on the shipped config:",
        "",
        *verdicts,
        "",
        "Tune's start-up and the workers' warm-up are fixed costs that concurrency does not "
        "divide, so longer runs scale better. Short trials scale less: each trial costs a Tune "
        "round trip (result to the driver, next config back to the worker), and at concurrency "
        "2 the driver shares the two cores with both workers.",
    ]


def plan_notes(plan: Plan) -> list[str]:
    return [
        *plan.notes,
        "Every run evaluates one trial at a time (concurrency 1); the pool runs two jobs at once.",
        "Hypervolume for every method comes from engine.offline.pareto (moocore): feasible points only, "
        "points not strictly better than the reference on every metric ignored.",
        "Vectorize's speed metric is measured wall time, so that problem is noisy even for a "
        "fixed seed (two jobs share the machine).",
    ]


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = arguments(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run of a minute or two")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 5, quick 2)")
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=None)
    parser.add_argument(
        "--timings-only",
        action="store_true",
        help="only parts 2 and 3 (overhead, speed-up), into benchmarks/results/pareto-timings.md",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        name = "pareto-timings.md" if args.timings_only else "pareto.md"
        args.out = ROOT / "benchmarks" / "results" / name
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds {args.seeds} must be at least 1")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return quick_plan(args.problems or ("zdt1", "vectorize"), args.seeds or 2)
    return full_plan(args.problems or PROBLEMS, args.seeds or 5)


def start_ray() -> None:
    """One Ray for parts 2 and 3, started after the pool is gone; never on Redis's 6379."""
    import ray

    ray.init(logging_level=logging.WARNING, log_to_driver=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    started, t0 = datetime.datetime.now(), time.perf_counter()

    lines = header(plan, started)
    if not args.timings_only:
        frame = order_frame(hv_frame(run_jobs(jobs_for(plan)), plan.checkpoints), plan.problems)
        lines += part1_section(frame, plan)
    start_ray()
    lines += part2_section(measure_overhead(plan), plan)
    lines += part3_section(measure_speedup(plan), plan)
    lines += notes_section(plan_notes(plan), time.perf_counter() - t0)

    report = "\n".join(lines) + "\n"
    write_report(report, args.out)
    full = args.out.parent / "pareto.md"
    if args.timings_only and full.exists():
        full.write_text(splice_timings(full.read_text(), report, command_line(), started))
        log(f"updated parts 2 and 3 of {full}")
    return 0


def splice_timings(full: str, timings: str, command: str, when: datetime.datetime) -> str:
    """The full report with parts 2 and 3 taken from a newer `--timings-only` report."""

    def parts(text: str) -> str:
        return text[text.index("## 2.") : text.index("## Notes")]

    stamp = f"- parts 2 and 3 re-measured {when:%Y-%m-%d %H:%M} with `{command}` (pareto-timings.md)\n"
    header_end = full.index("## 1.")
    return (
        full[:header_end].rstrip("\n")
        + "\n"
        + stamp
        + "\n"
        + full[header_end:].replace(parts(full), parts(timings))
    )


if __name__ == "__main__":
    sys.exit(main())
