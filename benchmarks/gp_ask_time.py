"""GP time per ask: how Optuna's GPSampler's cost grows with the trials it has seen.

    .venv/bin/python -m benchmarks.gp_ask_time [--sizes 25 50 100 200 400] [--asks 3]
                                               [--out benchmarks/results/gp-ask-time.md]

For each problem (ZDT1: 2 objectives, DTLZ2: 3, on 6 variables) and each history size n, an
Optuna study gets n random trials (seeded), then GPSampler is asked `--asks` times (each
ask told before the next) and the median seconds per ask is reported, on one thread (torch
and BLAS), as `auto` runs it. On DTLZ2 `auto`'s own GP ask is timed too: with three
objectives it fits GP to one random Chebyshev scalarisation per ask (ParEGO), not to
hypervolume improvement. This is what `auto`'s `model_until` trades: a GP phase of n trials
costs about the sum of these.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
import optuna
from threadpoolctl import threadpool_limits

import objectives.synthetic
from benchmarks.harness import Report, arguments, at_least_one, md_table
from engine.offline.searchers import make_searcher
from engine.spec import MetricSpec, parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)
PROBLEMS = {"zdt1": "ZDT1", "dtlz2": "DTLZ2"}


def ask_seconds(problem: str, n: int, asks: int) -> float:
    objective = getattr(objectives.synthetic, PROBLEMS[problem])()
    names = list(objective.space)
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        x: optuna.distributions.FloatDistribution(0.0, 1.0) for x in names
    }
    study = optuna.create_study(
        sampler=optuna.samplers.GPSampler(seed=0, n_startup_trials=0),
        directions=["minimize"] * len(objective.metrics),
    )
    rng = np.random.default_rng(0)
    for _ in range(n):
        params = dict(zip(names, rng.uniform(size=len(names)).tolist(), strict=True))
        values = list(objective.evaluate(params).values())
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values))
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        trial = study.ask(dists)
        times.append(time.perf_counter() - start)
        study.tell(trial, list(objective.evaluate(trial.params).values()))
    return statistics.median(times)


def auto_ask_seconds(problem: str, n: int, asks: int) -> float:
    """`auto`'s GP asks after its Sobol start-up of n trials."""
    objective = getattr(objectives.synthetic, PROBLEMS[problem])()
    metrics = [MetricSpec(name=m, direction="min", reference=1.1) for m in objective.metrics]
    space = parse_spec(
        {
            "name": "gp-ask-time",
            "objective": {"ref": f"objectives.synthetic:{PROBLEMS[problem]}"},
            "metrics": [m.model_dump() for m in metrics],
            "budget": {"trials": n + asks},
        }
    ).search_space()
    searcher = make_searcher("auto", space, metrics, options={"startup": n, "model_until": n + asks})
    times = []
    for k in range(n + asks):
        start = time.perf_counter()
        (trial,) = searcher.ask(1)
        if k >= n:
            times.append(time.perf_counter() - start)
        searcher.tell(trial.trial_id, objective.evaluate(trial.params))
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__, "gp-ask-time.md")
    parser.add_argument("--sizes", type=at_least_one, nargs="+", default=[25, 50, 100, 200, 400])
    parser.add_argument("--asks", type=at_least_one, default=3)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    report = Report("GP time per ask", ("optuna", "torch"), [f"sizes {args.sizes}, {args.asks} asks each"])
    rows = []
    with threadpool_limits(limits=1):
        for problem in PROBLEMS:
            for n in args.sizes:
                rows.append(
                    [problem, "Optuna GPSampler (EHVI)", str(n), f"{ask_seconds(problem, n, args.asks):.2f}"]
                )
        for n in args.sizes:
            seconds = auto_ask_seconds("dtlz2", n, args.asks)
            rows.append(["dtlz2", "auto's GP phase (ParEGO)", str(n), f"{seconds:.2f}"])
    head = ["problem", "GP", "trials seen", "median s per ask"]
    report.add(
        [
            "",
            *md_table(head, rows),
            "",
            "auto's rows follow a Sobol history of n trials, the others a random one.",
        ]
    )
    report.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
