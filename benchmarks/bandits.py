"""A/B allocation benchmark: what the bandit allocation (engine/experiments/allocation.py)
costs in regret, and how many users the sequential test (engine/experiments/stats.py)
needs to decide, against a fixed-horizon t-test.

    .venv/bin/python -m benchmarks.bandits [--seeds 200] [--users 10000] [--sync 100]
        [--floor 0.05] [--epsilons 0.1 0.15] [--experiments 2000] [--cap 5000]
        [--out benchmarks/results/bandits.md]

Part 1, cumulative regret. Three variants of true mean rating 3.0, 3.2 and 3.5 (the best),
ratings normal with sd 1.0 (not clipped to stars), one rating per user: the user's outcome.
Users arrive one after another; each new user gets `pick(shares, u)`, u uniform from a
seeded numpy Generator, and the shares are recomputed every `--sync` users (replicas
refresh their allocation from the store on an interval) from every variant's
`Summary.of(outcomes so far)`. Methods, on the same seeds and the same users (common random
numbers: the same u and the same rating noise for every method):
  - thompson, ucb: `shares(policy, weights, arms, floor=--floor, seed=seed)` (ours);
  - uniform: the fixed split, 1/3 each;
  - epsilon-greedy: epsilon spread evenly over the arms, the rest to the highest sample
    mean (to the arms without users while any is untried), on the same sync interval; one
    row per `--epsilons` value: 0.1, and 0.15, whose 0.05 per arm matches the bandits' floor.
A user's regret is 3.5 less their variant's true mean; a run's cumulative regret is the sum
over its users. Reported over the seeds: median, IQR and worst, never a chosen seed. The
product's target, Thompson's regret at most 0.3 x uniform's, is checked for the ratio of
the medians and for the worst seed's ratio (each seed's Thompson regret over the same
seed's uniform regret).

Part 2, users to a decision. Two arms, control 3.0 against a treatment 0.2 or 0.5 better
(sd 1.0), users split 50/50 (equal counts per arm at every look). Sequential: look after
every 10 users per arm from 20 on, stop when `sequential_p_value(control, treatment,
alpha=0.05, tuning=1000)` < 0.05, undecided at `--cap` users per arm. Fixed horizon: the
users per arm `users_needed` gives a two-sided t-test for 80% power at the true effect,
tested once (Welch) on the same simulated users.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Report, arguments, at_least_one, log, md_table, quartiles, seeds
from engine.experiments.allocation import pick, shares
from engine.experiments.stats import Summary, sequential_p_value, users_needed, welch

NAMES = ("control", "b", "c")  # the variants, in the allocation's order
MEANS = np.array([3.0, 3.2, 3.5])  # true mean ratings; c is the best
SD = 1.0
GAPS = MEANS.max() - MEANS  # each variant's regret per user
BEST = int(MEANS.argmax())
TARGET = 0.3  # the claim: Thompson's regret at most 0.3 x uniform's

ALPHA, TUNING = 0.05, 1000.0
EVERY, FIRST = 10, 20  # sequential looks: every 10 users per arm from 20 on
CONTROL = 3.0
EFFECTS = (0.2, 0.5)
CHUNK = 250  # experiments simulated at once (memory: 4 arrays of CHUNK x cap floats)
PART1_SEED, PART2_SEED = 1, 2  # the streams' first keys, so parts never share numbers


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{value} must be positive")
    return value


# -- part 1: regret ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    label: str
    policy: str  # thompson, ucb, uniform or epsilon-greedy
    epsilon: float = 0.0  # epsilon-greedy's


def methods(epsilons: Sequence[float]) -> list[Method]:
    return [
        Method("thompson (ours)", "thompson"),
        Method("ucb (ours)", "ucb"),
        Method("uniform A/B (1/3 each)", "uniform"),
        *(
            Method(f"epsilon-greedy (epsilon = {e:g}: {e / len(NAMES):.3f} per arm)", "epsilon-greedy", e)
            for e in epsilons
        ),
    ]


@dataclass(frozen=True)
class Run:
    method: str  # its label
    seed: int
    regret: float  # cumulative, over every user
    best_share: float  # share of users on the best variant


def allocation(
    method: str, outcomes: Mapping[str, list[float]], seed: int, floor: float, epsilon: float
) -> dict[str, float]:
    """Each variant's share of the next users, from every variant's outcomes so far."""
    weights = dict.fromkeys(NAMES, 1.0)
    if method in ("thompson", "ucb"):
        arms = {n: Summary.of(outcomes[n]) for n in NAMES}
        return shares(method, weights, arms, floor=floor, seed=seed)
    if method == "uniform":
        return shares("fixed", weights, {}, floor=floor)
    if method == "epsilon-greedy":
        untried = [n for n in NAMES if not outcomes[n]]
        greedy = untried or [max(NAMES, key=lambda n: float(np.mean(outcomes[n])))]
        explore = epsilon / len(NAMES)
        return {n: explore + (1 - epsilon) * (n in greedy) / len(greedy) for n in NAMES}
    raise ValueError(f"unknown method {method!r}")


def simulate(method: Method, seed: int, users: int, sync: int, floor: float) -> Run:
    """One run of `users` arrivals; the seed fixes the users (u and rating noise) for every method."""
    rng = np.random.default_rng([PART1_SEED, seed])
    u = rng.random(users)
    ratings = MEANS + SD * rng.standard_normal((users, len(NAMES)))  # each user's rating under each arm
    index = {n: i for i, n in enumerate(NAMES)}
    outcomes: dict[str, list[float]] = {n: [] for n in NAMES}
    chosen = np.empty(users, dtype=int)
    for start in range(0, users, sync):
        current = allocation(method.policy, outcomes, seed, floor, method.epsilon)
        for i in range(start, min(start + sync, users)):
            name = pick(current, float(u[i]))
            k = index[name]
            chosen[i] = k
            outcomes[name].append(float(ratings[i, k]))
    return Run(method.label, seed, float(GAPS[chosen].sum()), float(np.mean(chosen == BEST)))


def regret_table(
    runs: Sequence[Run], labels: Sequence[str]
) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """The table of part 1 (the methods `labels`, the first Thompson's, the third uniform's)
    and the verdicts on the target."""
    thompson, uniform = labels[0], labels[2]
    by = {m: {r.seed: r for r in runs if r.method == m} for m in labels}
    order = sorted(by[uniform])
    regret = {m: np.array([by[m][s].regret for s in order]) for m in labels}
    uniform_median = float(np.median(regret[uniform]))
    head = [
        "method",
        "cumulative regret: median",
        "IQR",
        "worst seed",
        "median / uniform's",
        "per-seed ratio to uniform: median / worst",
        "users on the best arm: median (worst seed)",
    ]
    rows = []
    for m in labels:
        q1, med, q3 = quartiles(regret[m])
        ratio = regret[m] / regret[uniform]
        best = np.array([by[m][s].best_share for s in order])
        rows.append(
            [
                m,
                f"{med:.0f}",
                f"{q1:.0f}-{q3:.0f}",
                f"{regret[m].max():.0f}",
                f"{med / uniform_median:.3f}",
                f"{np.median(ratio):.3f} / {ratio.max():.3f}",
                f"{100 * np.median(best):.1f}% ({100 * best.min():.1f}%)",
            ]
        )
    medians = float(np.median(regret[thompson])) / uniform_median
    ratio = regret[thompson] / regret[uniform]
    worst = int(np.argmax(ratio))
    verdicts = {
        "median": f"{'holds' if medians <= TARGET else 'FAILS'} (ratio of medians {medians:.3f})",
        "worst": (
            f"{'holds' if ratio.max() <= TARGET else 'FAILS'} (seed {order[worst]}: "
            f"{regret[thompson][worst]:.0f} against uniform's {regret[uniform][worst]:.0f}, "
            f"ratio {ratio.max():.3f}; worst Thompson regret over uniform's median: "
            f"{regret[thompson].max() / uniform_median:.3f})"
        ),
    }
    return head, rows, verdicts


# -- part 2: users to a decision --------------------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    effect: float
    experiments: int
    used: np.ndarray  # users per arm at the decision (the cap when undecided)
    decided: np.ndarray  # bool: stopped before the cap
    better: np.ndarray  # bool: stopped with the treatment ahead (meaningful where decided)
    fixed_n: int
    fixed_p: np.ndarray  # the fixed horizon's two-sided Welch p
    fixed_better: np.ndarray  # bool: the treatment ahead at the fixed horizon


def sequential(effect: float, experiments: int, cap: int) -> Decisions:
    """`experiments` simulated two-arm experiments, each tested sequentially and once at the
    fixed horizon, on the same users."""
    fixed_n = users_needed(effect, SD, alpha=ALPHA, power=0.8)
    horizon = max(cap, fixed_n)
    used, decided, better, fixed_p, fixed_better = [], [], [], [], []
    for chunk, start in enumerate(range(0, experiments, CHUNK)):
        size = min(CHUNK, experiments - start)
        rng = np.random.default_rng([PART2_SEED, round(1000 * effect), chunk])
        a = rng.normal(CONTROL, SD, (size, horizon))
        b = rng.normal(CONTROL + effect, SD, (size, horizon))
        ca, cb, qa, qb = np.cumsum(a, 1), np.cumsum(b, 1), np.cumsum(a**2, 1), np.cumsum(b**2, 1)
        stop = np.full(size, cap)
        done = np.zeros(size, dtype=bool)
        ahead = np.zeros(size, dtype=bool)
        for n in range(FIRST, cap + 1, EVERY):
            for e in np.flatnonzero(~done):
                c = Summary.from_sums(n, ca[e, n - 1], qa[e, n - 1])
                t = Summary.from_sums(n, cb[e, n - 1], qb[e, n - 1])
                if sequential_p_value(c, t, alpha=ALPHA, tuning=TUNING) < ALPHA:
                    done[e], stop[e], ahead[e] = True, n, t.mean > c.mean
        tests = [
            welch(
                Summary.from_sums(fixed_n, ca[e, fixed_n - 1], qa[e, fixed_n - 1]),
                Summary.from_sums(fixed_n, cb[e, fixed_n - 1], qb[e, fixed_n - 1]),
            )
            for e in range(size)
        ]
        used.append(stop)
        decided.append(done)
        better.append(ahead)
        fixed_p.append(np.array([w.p_value for w in tests]))
        fixed_better.append(np.array([w.difference > 0 for w in tests]))
        log(f"effect {effect:g}: {start + size}/{experiments} experiments")
    return Decisions(
        effect,
        experiments,
        np.concatenate(used),
        np.concatenate(decided),
        np.concatenate(better),
        fixed_n,
        np.concatenate(fixed_p),
        np.concatenate(fixed_better),
    )


def share(hits: np.ndarray) -> str:
    """A share with its binomial standard error, in percent."""
    p = float(np.mean(hits))
    return f"{100 * p:.1f}% (± {100 * np.sqrt(p * (1 - p) / len(hits)):.1f})"


def decision_row(d: Decisions) -> list[str]:
    correct = d.decided & d.better
    wrong = d.decided & ~d.better
    found = (d.fixed_p < ALPHA) & d.fixed_better
    fixed_wrong = (d.fixed_p < ALPHA) & ~d.fixed_better
    p50, p90 = np.percentile(d.used, [50, 90])
    return [
        f"{CONTROL:g} vs {CONTROL + d.effect:g} (d = {d.effect / SD:g})",
        str(d.experiments),
        f"{p50:.0f}",
        f"{p90:.0f}",
        share(correct),
        f"{int(wrong.sum())}",
        f"{100 * np.mean(~d.decided):.1f}%",
        f"{100 * np.mean(d.decided & (d.used <= d.fixed_n)):.1f}%",
        str(d.fixed_n),
        share(found),
        f"{int(fixed_wrong.sum())}",
        f"{np.mean(d.used) / d.fixed_n:.2f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__, "bandits.md")
    parser.add_argument("--seeds", type=at_least_one, default=200, help="part 1: seeds 0..N-1 (default 200)")
    parser.add_argument("--users", type=at_least_one, default=10_000, help="part 1: users per run")
    parser.add_argument("--sync", type=at_least_one, default=100, help="part 1: users between refreshes")
    parser.add_argument("--floor", type=float, default=0.05, help="part 1: the bandits' floor per arm")
    parser.add_argument(
        "--epsilons",
        type=float,
        nargs="+",
        default=[0.1, 0.15],
        help="part 1: epsilon-greedy's, one row each",
    )
    parser.add_argument("--experiments", type=at_least_one, default=2000, help="part 2: per effect")
    parser.add_argument("--cap", type=at_least_one, default=5000, help="part 2: most users per arm")
    parser.add_argument("--effects", type=positive, nargs="+", default=list(EFFECTS), help="part 2")
    args = parser.parse_args(argv)
    report = Report(
        "A/B allocation: bandit regret and users to a sequential decision",
        ["numpy", "scipy", "statsmodels"],
        [
            f"part 1: variants {', '.join(f'{n} {m:g}' for n, m in zip(NAMES, MEANS, strict=True))} "
            f"(true mean ratings), normal ratings sd {SD:g}, one rating per user; {args.users:,} users "
            f"arriving one after another; shares refreshed every {args.sync} users; floor "
            f"{args.floor:g} per arm (thompson, ucb); seeds 0-{args.seeds - 1}, every method on the "
            "same users (same u, same rating noise)",
            f"part 2: control {CONTROL:g} against treatments +{', +'.join(f'{e:g}' for e in args.effects)}"
            f", sd {SD:g}, 50/50; sequential_p_value(alpha={ALPHA:g}, tuning={TUNING:g}) looked at "
            f"every {EVERY} users per arm from {FIRST}, capped at {args.cap:,} per arm; "
            f"{args.experiments:,} experiments per effect",
        ],
    )

    compared = methods(args.epsilons)
    runs = []
    for seed in seeds(args.seeds):
        runs += [simulate(m, seed, args.users, args.sync, args.floor) for m in compared]
        if (seed + 1) % 10 == 0 or seed + 1 == args.seeds:
            log(f"part 1: {seed + 1}/{args.seeds} seeds")
    head, rows, verdicts = regret_table(runs, [m.label for m in compared])
    floor_regret = args.floor * float(GAPS.sum()) * args.users
    uniform_regret = float(GAPS.mean()) * args.users
    report.add(
        [
            "",
            f"## Part 1: cumulative regret over {args.users:,} users ({args.seeds} seeds)",
            "",
            "regret of a user: 3.5 less their variant's true mean. IQR: first-third quartile over the",
            "seeds; worst seed: the highest; per-seed ratio: a seed's regret over uniform's on the same",
            "seed's users.",
            "",
        ]
    )
    report.add(md_table(head, rows))
    report.add(
        [
            "",
            f"Target, Thompson's regret <= {TARGET:g} x uniform's: median {verdicts['median']}; "
            f"worst seed {verdicts['worst']}.",
            "",
            f"For scale: uniform's expected regret is {uniform_regret:.0f}; the floor alone, "
            f"{args.floor:g} of the users on each worse arm, costs at least {floor_regret:.0f} "
            f"({floor_regret / uniform_regret:.2f} x uniform's); epsilon-greedy's exploration at least "
            + ", ".join(f"{e * float(GAPS.mean()) * args.users:.0f} (epsilon {e:g})" for e in args.epsilons)
            + ".",
        ]
    )

    decisions = [sequential(e, args.experiments, args.cap) for e in args.effects]
    report.add(
        [
            "",
            "## Part 2: users per arm to a decision, sequential against fixed horizon",
            "",
            "sequential: users per arm at the stop (the cap when undecided), the share of experiments",
            "stopping with the treatment found better, the count stopping with the control found",
            "better (wrong direction), the share undecided at the cap, and the share it had decided",
            "by the fixed horizon's n (its power on the fixed test's budget). Fixed horizon:",
            "`users_needed` for 80% power, one two-sided Welch test at alpha 0.05 on the same users;",
            "its power: the share significant with the treatment ahead. ± one binomial standard error.",
            "",
        ]
    )
    head2 = [
        "means (effect in sd)",
        "experiments",
        "sequential users/arm: median",
        "p90",
        "correct",
        "wrong direction",
        "undecided",
        "decided within the fixed n",
        "fixed n/arm",
        "fixed power",
        "fixed wrong direction",
        "sequential mean users / fixed n",
    ]
    report.add(md_table(head2, [decision_row(d) for d in decisions]))
    report.write(
        args.out,
        [
            "ucb with no outcomes yet: every bound ties and the tied variants share evenly, as"
            " Thompson's draws do",
            "epsilon-greedy explores epsilon / 3 per arm: at 0.1 less than the bandits' floor, at 0.15"
            " as much (the row to compare with them)",
            f"the sequential test's tuning ({TUNING:g} users in all) makes it tightest near"
            f" {TUNING / 2:g} users per arm; a large effect is decided far earlier, where it is wider",
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
