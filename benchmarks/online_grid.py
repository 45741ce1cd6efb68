"""The online benchmark's grid: cells (family x population seed x model seed), one job per
(cell, method), and what running them all costs.

In a cell, `users` simulated users of the family take turns round by round, as in
`engine.sim.drive_users`: each round every active user gets a suggestion, rates it and the
method learns the rating; a staggered user starts after their `arrival` rounds and rates
`ratings` times. User i rates in the family's context i mod (number of contexts), so every
context has users and a shared model learns each context from several of them.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.online_methods import METHODS, make_method
from engine.online import Priors
from objectives.families import FAMILIES, family
from objectives.users import population

SLOW = ("skopt-gp",)  # run at the grid's first model seed and first `slow_pop_seeds` only

# CPU seconds per cell (30 users x 40 ratings, one BLAS thread, two jobs at a time) measured
# on 2026-11-30 on this 2-core machine, shared with a test suite (load 0.7-2.5), over one
# cell of default, staggered and contexts8 at seeds (0, 0); the projection uses them for
# methods the current run does not time itself
MEASURED_CPU_S = {
    "ours": 2.5,
    "ours-no-user-gp": 0.9,
    "population": 1.0,
    "shared-tpe": 5.8,
    "optuna-tpe": 3.3,
    "skopt-gp": 245.0,  # 204 s alone on the default family
    "random": 0.2,
}


@dataclass(frozen=True)
class Cell:
    family: str
    pop_seed: int  # objectives.users.population(n, seed=pop_seed, preset=family)
    model_seed: int  # the method's model and rngs

    def __str__(self) -> str:
        return f"{self.family} pop {self.pop_seed} model {self.model_seed}"


@dataclass(frozen=True)
class Plan:
    families: tuple[str, ...] = tuple(FAMILIES)
    pop_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    model_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    users: int = 30
    ratings: int = 40
    methods: tuple[str, ...] = METHODS
    slow_pop_seeds: int = 5  # population seeds (the grid's first) a slow peer runs on

    def cells(self, method: str) -> list[Cell]:
        """The method's cells: every one, or for a slow peer the first model seed's on the
        first `slow_pop_seeds` population seeds."""
        pops, models = self.pop_seeds, self.model_seeds
        if method in SLOW:
            pops, models = pops[: self.slow_pop_seeds], models[:1]
        grid = itertools.product(self.families, pops, models)
        return [Cell(f, p, m) for f, p, m in grid]

    def jobs(self) -> list[Job]:
        """Every (cell, method) job, the costliest first so that the pool packs well."""
        jobs = [Job(c, m, self.users, self.ratings) for m in self.methods for c in self.cells(m)]
        return sorted(jobs, key=lambda j: -MEASURED_CPU_S[j.method])


@dataclass(frozen=True)
class Job:
    cell: Cell
    method: str
    users: int
    ratings: int
    priors: Priors | None = None  # ours' model constants, when not the defaults


@dataclass
class Outcome:
    job: Job
    recommended: dict[str, np.ndarray]  # label -> (users, ratings) true stars of the recommendation
    suggested: np.ndarray  # (users, ratings) true stars of each suggestion, when it was rated
    cpu: float  # seconds
    wall: float


def run_job(job: Job) -> Outcome:
    """One method on one cell: after each rating, the true expected stars of the method's
    recommendation to that user (their taste as it is after the rating, for drifting users)."""
    threadpool_limits(1)  # two jobs share two cores; BLAS threads only oversubscribe them
    warnings.filterwarnings("ignore")  # Optuna's experimental multivariate, skopt's repeated points
    t0, w0 = time.process_time(), time.perf_counter()
    fam = family(job.cell.family)
    users = population(job.users, seed=job.cell.pop_seed, preset=fam)
    contexts = [fam.contexts[i % len(fam.contexts)] for i in range(job.users)]
    method = make_method(job.method, job.cell.model_seed, job.priors)
    suggested = np.zeros((job.users, job.ratings))
    recommended: dict[str, np.ndarray] = {}
    for step in range(1, max(u.arrival for u in users) + job.ratings + 1):
        for i, user in enumerate(users):
            n = step - user.arrival  # this user's rating number
            if not 1 <= n <= job.ratings:
                continue
            context = contexts[i]
            params = method.ask(i, context)
            suggested[i, n - 1] = user.expected_stars(params, context)
            stars = user.rate(params, context)
            method.tell(i, context, params, stars)
            for label, rec in method.recommend(i, context).items():
                curve = recommended.setdefault(label, np.zeros((job.users, job.ratings)))
                curve[i, n - 1] = user.expected_stars(rec, context)
    return Outcome(job, recommended, suggested, time.process_time() - t0, time.perf_counter() - w0)


def describe(out: Outcome) -> str:
    return f"{out.job.method} {out.job.cell}: {out.cpu:.1f} s CPU"


def cpu_per_cell(outcomes: list[Outcome], plan: Plan) -> dict[str, tuple[float, str]]:
    """Method -> (median CPU seconds per cell at the default cell size, where it comes from):
    this run's when its cells have the default size, else MEASURED_CPU_S (a cell's fixed
    costs do not shrink with it: scaling a small cell up would overstate)."""
    out = {m: (s, "measured earlier") for m, s in MEASURED_CPU_S.items()}
    full = Plan()
    if (plan.users, plan.ratings) != (full.users, full.ratings):
        return out
    for method in METHODS:
        times = [o.cpu for o in outcomes if o.job.method == method]
        if times:
            out[method] = (float(np.median(times)), "this run")
    return out


def projection(outcomes: list[Outcome], plan: Plan, workers: int = 2) -> tuple[float, list[str]]:
    """Projected wall minutes of the full default grid (every family, 5 x 5 seeds, every
    method, the slow peer on a share of it) on `workers` cores, and one line per method."""
    full, per_cell = Plan(), cpu_per_cell(outcomes, plan)
    lines, total = [], 0.0
    for method in METHODS:
        seconds, how = per_cell[method]
        cells = len(full.cells(method))
        total += seconds * cells
        lines.append(f"{method}: {seconds:.1f} s/cell ({how}) x {cells} cells")
    return total / workers / 60, lines
