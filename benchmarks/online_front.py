"""Does the offline front help the online phase? Vectorize users who weigh quality, speed and
cost differently, served from the published front (the online model's prior) or from a
cold start, in the same run.

    .venv/bin/python -m benchmarks.online_front [--measure] [--pop-seeds 0 1 2]
        [--model-seeds 0 1 2] [--users 20] [--ratings 20] [--out benchmarks/results/online-front.md]

The users and the measurements behind them: benchmarks/vectorize_users.py (`--measure`
re-runs configs/vectorize.yaml's exploration and the Sobol sample, about 5 minutes, into
benchmarks/results/online-front-measured.json; otherwise the committed measurements are
used). Each cell (population seed x model seed, the spec's seed) runs `OnlineEngine` in
process over its own SQLite store twice: with the exploration's trials published to the
store (`front`), and without (`cold`). Each user sets their weights
(`set_preferences`), then users take turns: suggest, then feedback with stars and the
measured time and size. Regret is the user's best utility over a dense Sobol pool minus
the true utility of what they got (the suggestion) or of what the model now recommends
for them (`profile`'s preferred settings); utilities are rewards in [-1, 1].
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from benchmarks.harness import Report, arguments, md_table, run_pool
from benchmarks.vectorize_users import SPEC, Truth, VectorizeUser, measure, users
from engine.online import Feedback, OnlineEngine, OnlineModel, Rater, UserHistory
from engine.online.front_prior import Front
from engine.spec import load_spec
from engine.store import EventStore

DATA = Path("benchmarks/results/online-front-measured.json")
GOOD = 0.05  # regret at which a recommendation counts as found
STARTS = ("front", "cold")


@dataclass(frozen=True)
class Cell:
    pop_seed: int
    model_seed: int
    start: str
    users: int
    ratings: int


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    prior: np.ndarray  # per user: regret of the recommendation before any rating
    served: np.ndarray  # users x ratings: regret of each suggestion
    recommended: np.ndarray  # users x ratings: regret of the recommendation after each rating


@functools.cache
def measurements() -> tuple[dict, Truth]:
    """The measurements and the truth fitted on them, once per worker process."""
    data = json.loads(DATA.read_text())
    return data, Truth(load_spec(SPEC), data["sampled"])


def run_cell(cell: Cell) -> Outcome:
    data, truth = measurements()
    spec = load_spec(SPEC).model_copy(update={"seed": cell.model_seed})
    people = users(truth, cell.users, cell.pop_seed)
    front = Front(data["explored"], spec.metrics, spec.weights()) if cell.start == "front" else None
    before = OnlineModel(spec.search_space(), seed=spec.seed, front=front)  # the engine's model, unrated
    prior = np.array(
        [regret(truth, p, before.recommend(Rater(), UserHistory(), None, p.weights)[0]) for p in people]
    )
    served = np.zeros((cell.users, cell.ratings))
    recommended = np.zeros((cell.users, cell.ratings))
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(f"sqlite:///{Path(tmp) / 'store.db'}")
        if cell.start == "front":
            rows = [
                {"experiment": spec.name, "run_id": "explore", "error": None, **r} for r in data["explored"]
            ]
            store.add_trials(rows)
        engine = OnlineEngine(store)
        engine.register(spec)
        for person in people:
            engine.set_preferences(spec.name, person.user_id, person.weights)
        now = 1_000.0
        for r in range(cell.ratings):
            for i, person in enumerate(people):
                now += 1.0
                s = engine.suggest(spec.name, person.user_id, now=now)
                served[i, r] = regret(truth, person, s.params)
                engine.feedback(s.suggestion_id, Feedback(**person.feedback(truth, s.params)), now=now)
                preferred = engine.profile(spec.name, person.user_id)["contexts"]["default"]["preferred"]
                recommended[i, r] = regret(truth, person, preferred)
        store.close()
    return Outcome(cell, prior, served, recommended)


def regret(truth: Truth, person: VectorizeUser, params: dict) -> float:
    return max(0.0, person.best - float(person.utility(truth.terms([params]))[0]))


def to_good(recommended: np.ndarray) -> np.ndarray:
    """Per user, the ratings until the recommendation's regret is at most GOOD (censored
    at ratings + 1)."""
    hit = recommended <= GOOD
    return np.where(hit.any(1), hit.argmax(1) + 1, recommended.shape[1] + 1)


def figures(o: Outcome) -> dict[str, np.ndarray]:
    """Per user: the model's best guess before any rating, what their first suggestion and
    their first ten cost them, the recommendation after 5 and after all ratings, and how
    long it took to find a good one."""
    last = o.recommended.shape[1] - 1
    return {
        "recommendation before any rating": o.prior,
        "first suggestion": o.served[:, 0],
        "mean of the first 10 suggestions": o.served[:, :10].mean(1),
        "recommendation after 5 ratings": o.recommended[:, min(4, last)],
        "recommendation after all ratings": o.recommended[:, last],
        "ratings until regret <= 0.05": to_good(o.recommended).astype(float),
    }


def report_rows(outcomes: list[Outcome]) -> tuple[list[list[str]], list[str]]:
    by_start = {
        start: sorted(
            (o for o in outcomes if o.cell.start == start), key=lambda o: (o.cell.pop_seed, o.cell.model_seed)
        )
        for start in STARTS
    }
    rows, notes = [], []
    for name in figures(outcomes[0]):
        pooled = {s: np.concatenate([figures(o)[name] for o in by_start[s]]) for s in STARTS}
        cells = {s: [float(np.median(figures(o)[name])) for o in by_start[s]] for s in STARTS}
        test = wilcoxon(pooled["front"], pooled["cold"], alternative="less", zero_method="zsplit")
        row = [name]
        for s in STARTS:
            q1, med, q3 = np.percentile(pooled[s], [25, 50, 75])
            row.append(f"{med:.3g} ({q1:.3g}-{q3:.3g}); worst cell {max(cells[s]):.3g}")
        row.append(f"{test.pvalue:.2g}")
        rows.append(row)
    found = {
        s: np.mean(np.concatenate([to_good(o.recommended) <= o.recommended.shape[1] for o in by_start[s]]))
        for s in STARTS
    }
    notes.append(
        f"share of users whose recommendation reached regret <= {GOOD} within the ratings: "
        f"front {found['front']:.0%}, cold {found['cold']:.0%}"
    )
    return rows, notes


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__, "online-front.md")
    parser.add_argument("--measure", action="store_true", help=f"re-measure {DATA} first (about 5 min)")
    parser.add_argument("--sampled", type=int, default=256, help="Sobol points measured with --measure")
    parser.add_argument("--pop-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--ratings", type=int, default=20)
    args = parser.parse_args(argv)
    if args.ratings < 10:
        parser.error("--ratings must be at least 10 (the first 10 suggestions are scored)")
    if args.measure or not DATA.exists():
        measure(DATA, args.sampled)
    data = json.loads(DATA.read_text())
    report = Report(
        "The offline front as the online prior: vectorize users, front against cold start",
        ["numpy", "scipy", "scikit-learn", "vtracer"],
        [
            f"{args.users} users x {args.ratings} ratings per cell; population seeds {args.pop_seeds} x "
            f"model seeds {args.model_seeds}; the same users and seeds for both starts",
            f"measurements: {DATA} ({len(data['explored'])} explored trials published as the front's run, "
            f"{len(data['sampled'])} Sobol points as the users' ground truth)",
        ],
    )
    cells = [
        Cell(p, m, start, args.users, args.ratings)
        for p in args.pop_seeds
        for m in args.model_seeds
        for start in STARTS
    ]
    outcomes = run_pool(
        run_cell, cells, lambda o: f"{o.cell.start} pop {o.cell.pop_seed} model {o.cell.model_seed}"
    )
    rows, notes = report_rows(outcomes)
    report.add(
        [
            "## Regret (best achievable utility minus what the user got; rewards in [-1, 1])",
            "",
            "Median over users of every cell (quartiles), the worst cell's median, and a one-sided",
            "paired Wilcoxon test that the front's regret is lower (same users, same seeds).",
            "",
        ]
    )
    report.add(md_table(["figure", "front", "cold start", "p (front < cold)"], rows))
    report.write(args.out, notes)


if __name__ == "__main__":
    main(sys.argv[1:])
