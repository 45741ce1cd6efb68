"""Online convergence: how many ratings until a user is served well, ours vs per-user peers.

    .venv/bin/python -m benchmarks.online [--quick] [--users 50] [--seeds 5] [--rounds 40]
                                          [--out benchmarks/results/online.md]

Simulated users (`objectives.users.population`) rate suggestions 1-5 stars. Each round every
user gets one suggestion from the method, rates it, and the method learns the rating; after
every rating the method names its recommended settings for that user. "Ratings to target" is
the first count of ratings at which the recommendation's *true* expected stars reach 4.5
(never: rounds + 1). Ours is one shared `engine.online.OnlineModel` (hierarchical warm
start); the peers are one optimiser per user: scikit-optimize GP-EI (the approach being
replaced), Optuna TPE and uniform random. Peers recommend their best-rated settings so far;
ours is reported both with its model's recommendation and with that same best-rated rule.
A second run sends each rating to a random one of the four contexts.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import wilcoxon
from threadpoolctl import threadpool_limits

from benchmarks.harness import Report, arguments, at_least_one, md_table, quartiles, run_pool, seeds
from benchmarks.online_methods import CONTEXT, PEERS, BestRated, Ours, make_learner
from objectives.users import CONTEXTS, SimulatedUser, population

TARGET = 4.5  # expected stars of the recommendation
TARGET_RATINGS = 15  # median ratings to target we aim for
LABELS = {
    "ours": "ours (model recommendation)",
    "ours-best-rated": "ours (best-rated so far)",
    "skopt-gp": "skopt GP-EI per user",
    "optuna-tpe": "Optuna TPE per user",
    "random": "random per user",
}


@dataclass(frozen=True)
class Plan:
    """What to run; `notes` lists every cut below the brief's full design."""

    users: int
    seeds: tuple[int, ...]
    rounds: int
    skopt_seeds: int  # at most this many seeds for skopt (its GP refits dominate the runtime)
    skopt_mixed_seeds: int  # and in the random-context run
    checkpoints: tuple[int, ...] = (1, 5, 10, 15, 20)  # the last round is always added
    notes: tuple[str, ...] = ()

    def seeds_for(self, method: str, mixed: bool) -> tuple[int, ...]:
        if method != "skopt-gp":
            return self.seeds
        return self.seeds[: self.skopt_mixed_seeds if mixed else self.skopt_seeds]


def make_plan(args: argparse.Namespace) -> Plan:
    """Full defaults, or a smoke run of a minute or two with `--quick`."""
    if args.quick:
        plan = Plan(
            users=args.users or 6,
            seeds=seeds(args.seeds or 1),
            rounds=args.rounds or 12,
            skopt_seeds=1,
            skopt_mixed_seeds=1,
            checkpoints=(1, 5),
        )
        return replace(plan, notes=("--quick smoke run: too small to conclude anything.",))
    plan = Plan(
        users=args.users or 50,
        seeds=seeds(args.seeds or 5),
        rounds=args.rounds or 40,
        skopt_seeds=5,  # the 5 seeds for every peer (about 7 CPU-minutes each)
        skopt_mixed_seeds=1,
    )
    return replace(plan, notes=cut_notes(plan))


def cut_notes(plan: Plan) -> tuple[str, ...]:
    """Why skopt runs on fewer seeds (measured in smoke runs with the same job code)."""
    portrait = len(plan.seeds_for("skopt-gp", False))
    mixed = len(plan.seeds_for("skopt-gp", True))
    if portrait == mixed == len(plan.seeds):
        return ()
    return (
        f"Cut: skopt GP-EI runs on {portrait} of {len(plan.seeds)} seeds (portrait) and {mixed} "
        f"(random contexts). It refits a GP (2 restarts) and searches EI with L-BFGS after every "
        "rating: one 50-user x 40-round seed took 460-530 s of CPU (~310 s with random "
        "contexts) in an earlier full run, against ~15 s for ours and ~8 s for Optuna TPE; with 3 "
        "and 2 seeds that run took 30 min on two cores shared with other work.",
    )


# -- the runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    method: str
    seed: int
    users: int
    rounds: int
    mixed: bool


@dataclass
class Outcome:
    job: Job
    curves: dict[str, np.ndarray]  # label -> (users, rounds) expected stars of the recommendation
    seconds: float


def schedule(job: Job) -> np.ndarray:
    """Which context each (round, user) rates in: the same for every method of a seed."""
    if not job.mixed:
        return np.full((job.rounds, job.users), CONTEXT, dtype=object)
    rng = np.random.default_rng([job.seed, 7])
    return np.array(CONTEXTS, dtype=object)[rng.integers(len(CONTEXTS), size=(job.rounds, job.users))]


def run_job(job: Job) -> Outcome:
    """One method on one seed's users; records the recommendation's true stars after each rating."""
    threadpool_limits(1)  # two jobs share two cores; BLAS threads only oversubscribe them
    warnings.filterwarnings("ignore")  # Optuna's experimental multivariate, skopt's repeated points
    t0 = time.process_time()
    users, contexts = population(job.users, job.seed), schedule(job)
    learner, best = make_learner(job.method, job.seed), BestRated()
    pickers = {job.method: best.pick}
    if isinstance(learner, Ours):
        pickers = {"ours": learner.recommend, "ours-best-rated": best.pick}
    curves = {label: np.zeros((job.users, job.rounds)) for label in pickers}
    judged = CONTEXTS if job.mixed else (CONTEXT,)
    for r in range(job.rounds):
        for i, user in enumerate(users):
            context = str(contexts[r, i])
            params = learner.ask(i, context)
            stars = user.rate(params, context)
            learner.tell(i, context, params, stars)
            best.add(i, context, params, stars)
            for label, pick in pickers.items():
                curves[label][i, r] = true_stars(user, pick, i, judged)
    return Outcome(job, curves, time.process_time() - t0)


def true_stars(
    user: SimulatedUser, pick: Callable[[int, str], dict[str, Any]], i: int, contexts: Sequence[str]
) -> float:
    """Mean expected stars of the recommendation over the judged contexts (no noise, no bias)."""
    return float(np.mean([user.expected_stars(pick(i, c), c) for c in contexts]))


def jobs_for(plan: Plan) -> list[Job]:
    """Every (method, seed, run) job, the slow skopt ones first so the pool packs well."""
    jobs = [
        Job(method, seed, plan.users, plan.rounds, mixed)
        for mixed in (False, True)
        for method in ("skopt-gp", "ours", "optuna-tpe", "random")
        for seed in plan.seeds_for(method, mixed)
    ]
    return sorted(jobs, key=lambda j: (j.method != "skopt-gp", j.mixed))


def describe(out: Outcome) -> str:
    kind = "mixed" if out.job.mixed else CONTEXT
    return f"{out.job.method} seed {out.job.seed} {kind}: {out.seconds:.0f} s CPU"


# -- tables ---------------------------------------------------------------------------------


def to_target(curve: np.ndarray) -> np.ndarray:
    """Per user: ratings until the recommendation reaches TARGET stars; rounds + 1 if never."""
    hit = curve >= TARGET
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, curve.shape[1] + 1)


def collect(outcomes: Sequence[Outcome], mixed: bool) -> dict[str, dict[int, np.ndarray]]:
    """label -> seed -> (users, rounds) curves, for one kind of run."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for o in outcomes:
        if o.job.mixed == mixed:
            for label, curve in o.curves.items():
                out.setdefault(label, {})[o.job.seed] = curve
    return {label: out[label] for label in LABELS if label in out}


def cpu_per_run(outcomes: Sequence[Outcome], mixed: bool) -> dict[str, float]:
    times: dict[str, list[float]] = {}
    for o in outcomes:
        if o.job.mixed == mixed:
            for label in o.curves:
                times.setdefault(label, []).append(o.seconds)
    return {label: float(np.median(t)) for label, t in times.items()}


def target_cell(by_seed: dict[int, np.ndarray]) -> str:
    """Median over seeds of the per-seed median (IQR) over users."""
    stats = np.array([quartiles(to_target(c)) for c in by_seed.values()])
    q1, med, q3 = np.median(stats, axis=0)
    return f"{med:g} ({q1:g}-{q3:g})"


def results_table(
    curves: dict[str, dict[int, np.ndarray]], seconds: dict[str, float], checkpoints: Sequence[int]
) -> list[str]:
    rounds = min(c.shape[1] for by_seed in curves.values() for c in by_seed.values())
    checkpoints = sorted({c for c in checkpoints if c < rounds} | {rounds})
    head = ["method", "seeds", "ratings to target: median (IQR)", "never reached"]
    head += [f"stars@{c}" for c in checkpoints] + ["CPU s/run"]
    rows = []
    for label, by_seed in curves.items():
        never = sum(int((to_target(c) > c.shape[1]).sum()) for c in by_seed.values())
        total = sum(c.shape[0] for c in by_seed.values())
        stars = [np.mean([c[:, k - 1].mean() for c in by_seed.values()]) for k in checkpoints]
        cells = [LABELS[label], str(len(by_seed)), target_cell(by_seed), f"{never}/{total}"]
        rows.append(cells + [f"{s:.2f}" for s in stars] + [f"{seconds[label]:.0f}"])
    return md_table(head, rows)


def paired_table(curves: dict[str, dict[int, np.ndarray]]) -> list[str]:
    """Ours vs each peer on the same (seed, user) pairs: who needs fewer ratings."""
    rows = []
    for peer in (p for p in ("ours-best-rated", *PEERS) if p in curves):
        common = sorted(set(curves["ours"]) & set(curves[peer]))
        ours = np.concatenate([to_target(curves["ours"][s]) for s in common])
        theirs = np.concatenate([to_target(curves[peer][s]) for s in common])
        diff = ours - theirs
        p = wilcoxon(ours, theirs).pvalue if np.any(diff) else 1.0
        counts = f"{(diff < 0).sum()} / {(diff == 0).sum()} / {(diff > 0).sum()}"
        rows.append([LABELS[peer], str(len(diff)), counts, f"{diff.mean():+.1f}", f"{p:.2g}"])
    head = ["ours (model) vs", "pairs", "ours fewer / tie / more", "mean Δ ratings", "Wilcoxon p"]
    return md_table(head, rows)


def lead_text(curves: dict[str, dict[int, np.ndarray]]) -> list[str]:
    """For each peer, the rounds at which its mean recommendation beats ours (model)."""
    lines = []
    for peer in (p for p in PEERS if p in curves):
        common = sorted(set(curves["ours"]) & set(curves[peer]))
        ours = np.mean([curves["ours"][s].mean(axis=0) for s in common], axis=0)
        theirs = np.mean([curves[peer][s].mean(axis=0) for s in common], axis=0)
        rounds = np.flatnonzero(theirs > ours) + 1
        where = ranges(rounds) if len(rounds) else "never"
        lines.append(f"- {LABELS[peer]} has higher mean stars than ours (model) after ratings: {where}")
    return lines


def ranges(values: np.ndarray) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], int(values[0])
    for prev, cur in itertools.pairwise(values):
        if cur != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = int(cur)
    parts.append(f"{start}-{values[-1]}" if values[-1] != start else f"{start}")
    return ", ".join(parts)


def verdict(curves: dict[str, dict[int, np.ndarray]]) -> str:
    medians = {
        label: float(np.median([np.median(to_target(c)) for c in by_seed.values()]))
        for label, by_seed in curves.items()
    }
    ours, peers = medians["ours"], {p: medians[p] for p in PEERS if p in medians}
    best_peer = min(peers, key=lambda p: peers[p])
    meets = ours <= TARGET_RATINGS and all(ours < v for v in peers.values())
    return (
        f"**Ours (model): median {ours:g} ratings to target; best peer {LABELS[best_peer]} "
        f"{peers[best_peer]:g}** ({'meets' if meets else 'misses'} the target: ≤ {TARGET_RATINGS} and "
        "lower than every peer)."
    )


# -- report ---------------------------------------------------------------------------------


def portrait_section(outcomes: Sequence[Outcome], plan: Plan) -> list[str]:
    curves, seconds = collect(outcomes, mixed=False), cpu_per_run(outcomes, mixed=False)
    return [
        "",
        f"## 1. Ratings until the recommendation reaches {TARGET} expected stars ({CONTEXT})",
        "",
        f"Each round every user gets one suggestion, rates it (1-5 stars, noisy, biased) and the "
        f"method learns it. Ratings to target: per user the first n at which the recommendation's "
        f"true expected stars ≥ {TARGET} (never within {plan.rounds}: counted as {plan.rounds + 1}); "
        "median (IQR) over users per seed, then the median of those over seeds. stars@n: mean "
        "expected stars of the recommendation after n ratings (over users, then seeds). Peers "
        "recommend their best-rated settings so far (ties: latest); ours both ways, on the same run. "
        "CPU s/run: one seed, all users and rounds, including the recommendations.",
        "",
        *results_table(curves, seconds, plan.checkpoints),
        "",
        verdict(curves),
        "",
        "Paired over the same simulated users (seed, user):",
        "",
        *paired_table(curves),
        "",
        *lead_text(curves),
    ]


def mixed_section(outcomes: Sequence[Outcome], plan: Plan) -> list[str]:
    curves = collect(outcomes, mixed=True)
    if not curves:
        return []
    return [
        "",
        "## 1b. Each rating in a random one of the four contexts",
        "",
        f"Same protocol, but each (round, user) rates in a context drawn uniformly from "
        f"{', '.join(CONTEXTS)} (same draws for every method). Ours keeps one Rater per user and one "
        "history per (user, context); peers run one optimiser per (user, context). The score after n "
        "ratings is the mean over all four contexts of the recommendation's expected stars, so a "
        "context the user has not rated yet counts too (peers then fall back to the user's "
        "best-rated settings anywhere, or the centre of the space). Target: that mean ≥ "
        f"{TARGET}. With about {plan.rounds // len(CONTEXTS)} ratings per context few users get "
        "there, so the stars@n columns say more than the ratings-to-target column here.",
        "",
        *results_table(curves, cpu_per_run(outcomes, mixed=True), plan.checkpoints),
        "",
        *lead_text(curves),
    ]


def plan_notes(plan: Plan) -> list[str]:
    return [
        *plan.notes,
        "Two (method, seed) jobs run at a time in a process pool on the two cores.",
        "Ratings reward ours as (stars - 3) / 2 (`engine.online.quality_reward`); skopt minimises "
        "-stars; Optuna maximises stars.",
        "Every method of a seed faces the same users: the same preferred points, biases and noise streams.",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = arguments(__doc__, "online.md")
    parser.add_argument("--quick", action="store_true", help="smoke run of a minute or two")
    parser.add_argument("--users", type=at_least_one, help="simulated users (default 50, quick 6)")
    parser.add_argument("--seeds", type=at_least_one, help="seeds 0..N-1 (default 5, quick 1)")
    parser.add_argument("--rounds", type=at_least_one, help="ratings per user (default 40, quick 12)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    setup = (
        f"{plan.users} users x {plan.rounds} rounds, seeds {', '.join(map(str, plan.seeds))}; "
        "BLAS limited to one thread per process"
    )
    report = Report("Online convergence benchmark", ("numpy", "scipy", "optuna", "scikit-optimize"), [setup])
    outcomes = run_pool(run_job, jobs_for(plan), describe)
    report.add(portrait_section(outcomes, plan) + mixed_section(outcomes, plan))
    report.write(args.out, plan_notes(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
