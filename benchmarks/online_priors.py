"""Which constants should the online model default to? Each chosen on tuning seeds that the
convergence benchmark (benchmarks.online, seeds 0-4) never uses, over every population
family; and what type-II maximum likelihood would have chosen for the user level's amplitude.

    .venv/bin/python -m benchmarks.online_priors [--sweep user_amplitude=0.8,1.2 noise=0.2,0.45 ...]
        [--pop-seeds 10 11 12] [--model-seeds 10 11 12] [--out benchmarks/results/online-priors.md]

The population levels' noise and weight scale are not here: they are fitted to each
experiment's ratings by marginal likelihood (engine/online/regression.py). Every other
constant of `Priors` is swept one at a time around the defaults: the defaults, then each
`--sweep` value of one constant with the rest at their defaults. For each candidate, ours
runs every family's grid of tuning cells (30 users x 40 ratings, as
benchmarks/online_grid.py runs them); the report gives, per family, the share of users
reaching 4.5 true expected stars within 40 ratings (mean over cells) and the worst cell,
and the median ratings to reach it. A value beats the default when its mean share over
families is higher (ties: fewer ratings, then the higher worst cell): with 9 cells per
family a worst cell moves by a user or two between neighbouring candidates.

Then, per family, ours runs one tuning cell at the default priors and the users' residuals
from their context's model (and their rater bias) are scored under the user GP's prior at
each candidate amplitude: the pooled log marginal likelihood, the criterion empirical Bayes
would maximise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import fields, replace

import numpy as np
from scipy.stats import multivariate_normal

from benchmarks.harness import Report, arguments, md_table, run_pool
from benchmarks.online_grid import Cell, Job, Outcome, describe, run_job
from benchmarks.online_methods import Ours
from benchmarks.online_report import to_target
from engine.online import Priors, UserHistory
from engine.sim import TARGET_STARS
from objectives.families import FAMILIES, family
from objectives.users import population

RATINGS, USERS = 40, 30


def reaching(out: Outcome) -> float:
    """Share of the cell's users whose recommendation reached the target within the ratings."""
    return float(np.mean((out.recommended["ours"] >= TARGET_STARS).any(axis=1)))


def log_likelihoods(fam: str, pop_seed: int, model_seed: int, amplitudes: Sequence[float]) -> np.ndarray:
    """Pooled log marginal likelihood of every user's residuals at each amplitude, after a
    cell of ours at the default priors (users take turns, all arriving at once)."""
    spec, users = family(fam), population(USERS, seed=pop_seed, preset=fam)
    ours = Ours(model_seed)
    contexts = [spec.contexts[i % len(spec.contexts)] for i in range(USERS)]
    for _ in range(RATINGS):
        for i, user in enumerate(users):
            params = ours.ask(i, contexts[i])
            ours.tell(i, contexts[i], params, user.rate(params, contexts[i]))
    model, priors, total = ours.model, ours.model.priors, np.zeros(len(amplitudes))
    for (i, context), history in ours.histories.items():
        x, arms = history.x.astype(float), history.arms.astype(int)
        prior_mean, _ = model.posterior(ours.raters[i], UserHistory(), context, x, arms)
        residual = history.rewards - prior_mean
        rbf = np.exp(-model.user_kernel.g * ((x[:, None] - x[None]) ** 2).sum(-1))
        same = arms[:, None] == arms[None]
        shape = rbf * np.where(same, 1.0, priors.arm_share)
        fixed = priors.arm_offset**2 * same + priors.noise**2 * np.eye(len(x))
        for k, amplitude in enumerate(amplitudes):
            total[k] += multivariate_normal(np.zeros(len(x)), amplitude**2 * shape + fixed).logpdf(residual)
    return total


SWEEP = (
    "user_amplitude=0.8,1.2",
    "lengthscale=0.15,0.25",
    "noise=0.2,0.45",
    "arm_offset=0.15,0.5",
    "arm_share=0.6,0.95",
    "half_life=25,100",
    "bias_shrinkage=1,10",
)


def sweep(specs: Sequence[str]) -> list[tuple[str, Priors]]:
    """The defaults, then one constant changed at a time: (label, priors) pairs."""
    defaults = Priors()
    names = {f.name for f in fields(Priors)}
    candidates = [("defaults", defaults)]
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in names or not values:
            raise SystemExit(f"--sweep {spec!r}: expected NAME=V1,V2 with NAME one of {sorted(names)}")
        kind = type(getattr(defaults, name))
        candidates += [
            (f"{name} = {v}", replace(defaults, **{name: kind(float(v))})) for v in values.split(",")
        ]
    return candidates


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__, "online-priors.md")
    parser.add_argument("--sweep", nargs="+", default=list(SWEEP), metavar="NAME=V1,V2")
    parser.add_argument("--pop-seeds", type=int, nargs="+", default=[10, 11, 12])
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[10, 11, 12])
    args = parser.parse_args(argv)
    candidates = sweep(args.sweep)
    cells = [Cell(f, p, m) for f in FAMILIES for p in args.pop_seeds for m in args.model_seeds]
    jobs = [Job(c, "ours", USERS, RATINGS, priors) for _, priors in candidates for c in cells]
    report = Report(
        "Online priors: the model's constants, chosen on tuning seeds",
        ["numpy", "scipy"],
        [
            f"tuning cells: every family x population seeds {args.pop_seeds} x model seeds "
            f"{args.model_seeds} (benchmarks.online uses seeds 0-4)",
            f"{USERS} users x {RATINGS} ratings per cell; the defaults ({Priors()}), then one at a"
            f" time: {' '.join(args.sweep)}",
        ],
    )
    outcomes = run_pool(run_job, jobs, describe)
    share: dict[tuple[Priors, str], list[float]] = {}
    ratings: dict[Priors, list[float]] = {}
    for out in outcomes:
        assert out.job.priors is not None
        share.setdefault((out.job.priors, out.job.cell.family), []).append(reaching(out))
        ratings.setdefault(out.job.priors, []).append(float(np.median(to_target(out.recommended["ours"]))))
    rows, score = [], {}
    for label, priors in candidates:
        means = [100 * np.mean(share[(priors, f)]) for f in FAMILIES]
        worst = [100 * min(share[(priors, f)]) for f in FAMILIES]
        typical = float(np.median(ratings[priors]))
        score[label] = (round(float(np.mean(means))), -typical, min(worst))
        cols = [f"{m:.0f} / {w:.0f}" for m, w in zip(means, worst, strict=True)]
        rows.append([label, *cols, f"{np.mean(means):.0f}", f"{min(worst):.0f}", f"{typical:g}"])
    title = "## Share of users reaching the target within 40 ratings, % (mean over cells / worst cell)"
    report.add([title, "", "ratings: median over cells of the cell's median ratings to the target.", ""])
    report.add(md_table(["candidate", *FAMILIES, "mean", "worst", "ratings"], rows))
    better = [label for label, _ in candidates[1:] if score[label] > score["defaults"]]
    verdict = ", ".join(better) if better else "none: every default holds"
    report.add(["", f"Better than the defaults (mean share, then ratings, then worst cell): {verdict}.", ""])

    amplitudes = sorted({priors.user_amplitude for _, priors in candidates})
    likelihood_rows = []
    for f in FAMILIES:
        ll = log_likelihoods(f, args.pop_seeds[0], args.model_seeds[0], amplitudes)
        best = amplitudes[int(np.argmax(ll))]
        likelihood_rows.append([f, *(f"{v - ll.max():.1f}" for v in ll), f"{best:g}"])
    title = "## Log marginal likelihood of the users' residuals at each amplitude, relative to the best"
    report.add([title, ""])
    report.add(md_table(["family", *(f"{a:g}" for a in amplitudes), "maximum at"], likelihood_rows))
    report.write(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
