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
and the median ratings to reach it. A value beats the default only when a paired test over
the tuning cells says so (two-sided Wilcoxon, p < 0.05, on the share or the ratings, the
other not significantly worse): a point of mean share is two or three users a family, and
a worst cell moves by a user or two between neighbouring candidates.

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
from scipy.stats import multivariate_normal, wilcoxon

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


def paired(diffs: Sequence[float]) -> tuple[float, float]:
    """Mean difference over cells and its two-sided Wilcoxon signed-rank p (1 when all tie)."""
    if not any(diffs):
        return 0.0, 1.0
    return float(np.mean(diffs)), float(wilcoxon(diffs).pvalue)


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
    share: dict[tuple[Priors, Cell], float] = {}
    ratings: dict[tuple[Priors, Cell], float] = {}
    for out in outcomes:
        assert out.job.priors is not None
        share[(out.job.priors, out.job.cell)] = 100 * reaching(out)
        ratings[(out.job.priors, out.job.cell)] = float(np.median(to_target(out.recommended["ours"])))
    defaults = candidates[0][1]
    rows, better = [], []
    for label, priors in candidates:
        by_family = [[share[(priors, c)] for c in cells if c.family == f] for f in FAMILIES]
        cols = [f"{np.mean(v):.0f} / {min(v):.0f}" for v in by_family]
        typical = float(np.median([ratings[(priors, c)] for c in cells]))
        row = [label, *cols, f"{np.mean([share[(priors, c)] for c in cells]):.1f}"]
        row += [f"{min(min(v) for v in by_family):.0f}", f"{typical:g}"]
        if priors == defaults:
            rows.append([*row, "", ""])
            continue
        tests = [
            paired([table[(priors, c)] - table[(defaults, c)] for c in cells]) for table in (share, ratings)
        ]
        (d_share, p_share), (d_ratings, p_ratings) = tests
        rows.append([*row, f"{d_share:+.1f} (p = {p_share:.2g})", f"{d_ratings:+.2f} (p = {p_ratings:.2g})"])
        share_up, share_down = p_share < 0.05 and d_share > 0, p_share < 0.05 and d_share < 0
        faster, slower = p_ratings < 0.05 and d_ratings < 0, p_ratings < 0.05 and d_ratings > 0
        if (share_up and not slower) or (faster and not share_down):
            better.append(label)
    title = "## Share of users reaching the target within 40 ratings, % (mean over cells / worst cell)"
    notes = [
        title,
        "",
        "mean, worst: over every family's cells; ratings: median over cells of the cell's median",
        "ratings to the target; against the defaults: mean difference over the cells and the",
        "two-sided paired Wilcoxon p over them.",
        "",
    ]
    report.add(notes)
    head = ["candidate", *FAMILIES, "mean", "worst", "ratings", "share vs defaults", "ratings vs defaults"]
    report.add(md_table(head, rows))
    verdict = ", ".join(better) if better else "none: every default holds"
    report.add(
        ["", f"Better than the defaults (share or ratings at p < 0.05, the other not worse): {verdict}.", ""]
    )

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
