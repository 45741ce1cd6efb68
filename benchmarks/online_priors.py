"""Which user-level amplitude and lengthscale should the online model default to? Chosen on tuning seeds
that the convergence benchmark (benchmarks.online, seeds 0-4) never uses, over every
population family; and what type-II maximum likelihood would have chosen instead.

    .venv/bin/python -m benchmarks.online_priors [--amplitudes 0.35 0.6 0.8 1.0]
        [--lengthscales 0.15 0.2]
        [--pop-seeds 10 11 12] [--model-seeds 10 11 12] [--out benchmarks/results/online-priors.md]

For each candidate pair (`Priors.user_amplitude`, `Priors.lengthscale`), ours runs every
family's grid of tuning cells (30 users x 40 ratings, as benchmarks/online_grid.py runs
them); the report gives, per family, the share of users reaching 4.5 true expected stars
within 40 ratings (mean over cells) and the worst cell. The default is the candidate with
the highest mean share over families (ties: the higher worst cell): with 9 cells per
family a worst cell moves by a user or two between neighbouring candidates.

Then, per family, ours runs one tuning cell at the default priors and the users' residuals
from their context's model (and their rater bias) are scored under the user GP's prior at
each candidate amplitude: the pooled log marginal likelihood, the criterion empirical Bayes
would maximise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.stats import multivariate_normal

from benchmarks.harness import Report, arguments, md_table, run_pool
from benchmarks.online_grid import Cell, Job, Outcome, describe, run_job
from benchmarks.online_methods import Ours
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__, "online-priors.md")
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.35, 0.6, 0.8, 1.0])
    parser.add_argument("--lengthscales", type=float, nargs="+", default=[0.15, 0.2])
    parser.add_argument("--pop-seeds", type=int, nargs="+", default=[10, 11, 12])
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[10, 11, 12])
    args = parser.parse_args(argv)
    amplitudes: list[float] = args.amplitudes
    cells = [Cell(f, p, m) for f in FAMILIES for p in args.pop_seeds for m in args.model_seeds]
    candidates = [
        replace(Priors(), user_amplitude=a, lengthscale=ls) for a in amplitudes for ls in args.lengthscales
    ]
    jobs = [Job(c, "ours", USERS, RATINGS, priors) for priors in candidates for c in cells]
    report = Report(
        "Online priors: the user level's amplitude, chosen on tuning seeds",
        ["numpy", "scipy"],
        [
            f"tuning cells: every family x population seeds {args.pop_seeds} x model seeds "
            f"{args.model_seeds} (benchmarks.online uses seeds 0-4)",
            f"{USERS} users x {RATINGS} ratings per cell; candidates user_amplitude = {amplitudes}"
            f" x lengthscale = {args.lengthscales}",
        ],
    )
    outcomes = run_pool(run_job, jobs, describe)
    share: dict[tuple[Priors, str], list[float]] = {}
    for out in outcomes:
        assert out.job.priors is not None
        share.setdefault((out.job.priors, out.job.cell.family), []).append(reaching(out))
    rows, score = [], {}
    for priors in candidates:
        means = [100 * np.mean(share[(priors, f)]) for f in FAMILIES]
        worst = [100 * min(share[(priors, f)]) for f in FAMILIES]
        score[priors] = (round(float(np.mean(means))), min(worst))
        cols = [f"{m:.0f} / {w:.0f}" for m, w in zip(means, worst, strict=True)]
        name = [f"{priors.user_amplitude:g}", f"{priors.lengthscale:g}"]
        rows.append([*name, *cols, f"{np.mean(means):.0f}", f"{min(worst):.0f}"])
    title = "## Share of users reaching the target within 40 ratings, % (mean over cells / worst cell)"
    report.add([title, ""])
    report.add(md_table(["user_amplitude", "lengthscale", *FAMILIES, "mean", "worst"], rows))
    chosen = max(candidates, key=lambda priors: score[priors])
    report.add(
        [
            "",
            f"Chosen: user_amplitude = {chosen.user_amplitude:g}, lengthscale = {chosen.lengthscale:g}"
            " (highest mean share, then worst cell).",
            "",
        ]
    )

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
