"""Online convergence: does the learner generalise? Ours against its ablations and peers,
over a grid of population families x population seeds x model seeds.

    .venv/bin/python -m benchmarks.online [--quick] [--families default drift ...]
        [--pop-seeds 0 1 2 3 4] [--model-seeds 0 1 2 3 4] [--users 30] [--ratings 40]
        [--methods ours population random ...] [--gp-pop-seeds 3]
        [--out benchmarks/results/online.md]

Each cell (family, population seed, model seed) draws `--users` simulated users
(`objectives.users.population(n, seed=pop_seed, preset=family)`) who take turns rating
suggestions, `--ratings` each (benchmarks/online_grid.py). Every method sees the same cells
and users (benchmarks/online_methods.py): ours (`engine.online.OnlineModel`: population,
context and user levels), ours without the user GP, population only, one Optuna TPE study
shared per context, and per user Optuna TPE, scikit-optimize GP-EI (at the first model seed
and the first `--gp-pop-seeds` population seeds only: it is slow) and random. After each
rating the method names its recommendation; the report (benchmarks/online_report.py) counts
the ratings until it scores >= 4.5 true expected stars, per family, with quartiles over
cells, the worst cell and paired Wilcoxon tests.
One job per (cell, method), two at a time (the machine's two cores).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from benchmarks.harness import Report, arguments, at_least_one, run_pool
from benchmarks.online_grid import SLOW, Outcome, Plan, describe, projection, run_job
from benchmarks.online_methods import LABELS, METHODS
from benchmarks.online_report import collect, explanation, family_section, summary_table
from objectives.families import FAMILIES

BUDGET_MIN = 90  # the full default grid must fit in this on two cores
QUICK = Plan(families=("default",), pop_seeds=(0,), model_seeds=(0,), users=6, ratings=12)
FULL = Plan()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = arguments(__doc__, "online.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: default family, 1 cell, 6 x 12")
    parser.add_argument("--families", nargs="+", choices=tuple(FAMILIES), help="default: all")
    parser.add_argument("--pop-seeds", nargs="+", type=int, help="population seeds (default 0-4)")
    parser.add_argument("--model-seeds", nargs="+", type=int, help="model seeds (default 0-4)")
    parser.add_argument("--users", type=at_least_one, help="simulated users per cell (default 30)")
    parser.add_argument("--ratings", type=at_least_one, help="ratings per user (default 40)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default: all")
    parser.add_argument(
        "--gp-pop-seeds",
        type=at_least_one,
        help=f"GP-EI runs on this many of the population seeds (default {FULL.slow_pop_seeds})",
    )
    args = parser.parse_args(argv)
    if args.ratings is not None and args.ratings < 10:
        parser.error("--ratings must be at least 10 (the last 10 suggestions are scored)")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    """The full default grid, or `--quick`'s, with any option given replacing its part."""
    plan = QUICK if args.quick else Plan()
    given = {
        "families": args.families,
        "pop_seeds": args.pop_seeds,
        "model_seeds": args.model_seeds,
        "users": args.users,
        "ratings": args.ratings,
        "methods": args.methods,
        "slow_pop_seeds": args.gp_pop_seeds,
    }
    given = {k: tuple(dict.fromkeys(v)) if isinstance(v, list) else v for k, v in given.items()}
    return replace(plan, **{k: v for k, v in given.items() if v is not None})


def slow_share(plan: Plan) -> str:
    pops = plan.pop_seeds[: plan.slow_pop_seeds]
    return f"{', '.join(SLOW)} at model seed {plan.model_seeds[0]} and population seeds {list(pops)} only"


def setup_lines(plan: Plan) -> list[str]:
    cut = f"; {slow_share(plan)}" if any(m in SLOW for m in plan.methods) else ""
    return [
        f"families: {', '.join(plan.families)}",
        f"grid per family: population seeds {list(plan.pop_seeds)} x model seeds "
        f"{list(plan.model_seeds)}{cut}",
        f"{plan.users} users per cell x {plan.ratings} ratings each; methods: "
        f"{', '.join(plan.methods)}; BLAS limited to one thread per process",
    ]


def budget_lines(outcomes: list[Outcome], plan: Plan) -> list[str]:
    minutes, per_method = projection(outcomes, plan)
    verdict = "within" if minutes <= BUDGET_MIN else "OVER"
    return [
        f"projected full runtime (every family, {len(FULL.pop_seeds)} x {len(FULL.model_seeds)} "
        f"seeds, {FULL.users} users x {FULL.ratings} ratings, every method, {slow_share(FULL)}, "
        f"2 workers): {minutes:.0f} min, {verdict} the {BUDGET_MIN}-min budget. CPU per cell: "
        f"{'; '.join(per_method)}",
    ]


def notes(plan: Plan) -> list[str]:
    ran_slow = any(m in SLOW for m in plan.methods)
    return [
        "User i of a cell rates in the family's context i mod (number of contexts): every "
        "context has users, and the shared models learn each context from several of them.",
        "Ours: one `OnlineModel(space, seed=model_seed)`, a Rater per user and a UserHistory "
        "per (user, context). Ours without user GP: the same, but every UserHistory stays "
        "empty (suggest and recommend get a fresh one); the population still learns each "
        "rating through `OnlineModel.learn`, calibrated by the user's Rater. Population only: "
        "no per-user state at all (a fresh Rater and UserHistory on every call): every user of "
        "a context is recommended the context model's best, and ratings reach it uncalibrated. "
        "Both use the public API only.",
        "Peers recommend each user's best-rated settings so far (latest on ties). Shared TPE "
        "per context: one Optuna multivariate TPE study per context, asked for every request "
        "and told every user's reward; recommended two ways from the same run: the user's "
        "best-rated settings among those the study suggested to them, and the study's best "
        "trial (`best_params`, the highest reward told by anyone, first on ties) for everyone.",
        "Rewards: (stars - 3) / 2 (`engine.online.quality_reward`) for every method; skopt "
        "minimises its negative. Per-user peers seed each (user, context) optimiser from the "
        "model seed.",
        "Every method of a cell faces the same users: the same tastes, biases and noise streams.",
        "CPU s/cell: median over the cells of one (cell, method) job's process time; jobs run two at a time.",
        f"Cut: {', '.join(SLOW)} refits a GP and searches EI after every rating (100-125 s of CPU "
        "per cell on 2026-12-01 against ≤ 4 s for every other method), so it runs at model seed 0 "
        f"only, on the first {FULL.slow_pop_seeds} population seeds of every family by default "
        "(5 cells per family: the fewest that can pass a one-sided paired Wilcoxon test of the "
        "share at p < 0.05). "
        f"Here: {slow_share(plan) if ran_slow else ', '.join(SLOW) + ' not run'}.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    packages = ("numpy", "scipy", "optuna", "scikit-optimize")
    report = Report("Online convergence: does the learner generalise?", packages, setup_lines(plan))
    outcomes = run_pool(run_job, plan.jobs(), describe)
    report.add_setup(budget_lines(outcomes, plan))
    results = collect(outcomes)
    report.add(["", *explanation(plan.ratings), "", "## Summary", "", *summary_table(results, plan.families)])
    for fam in plan.families:
        report.add(family_section(fam, results[fam]))
    lines = [
        f"{LABELS[m]}: {np.median([o.cpu for o in outcomes if o.job.method == m]):.1f} s"
        for m in plan.methods
    ]
    report.write(args.out, [*notes(plan), "Median CPU per cell in this run: " + "; ".join(lines) + "."])
    return 0


if __name__ == "__main__":
    sys.exit(main())
