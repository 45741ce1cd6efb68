"""`make demo`'s online phase over many population seeds: how many of its 30 users reach 4.5
stars within 20 ratings, per seed (model seed 0, genai.yaml's).

    .venv/bin/python -m benchmarks.demo_convergence [--pop-seeds 0 1 ... 9] [--users 30]
        [--rounds 20] [--out benchmarks/results/demo-convergence.md]

The demo drives its users through the Serve API; here the same `OnlineEngine` (the code
behind every replica) runs in process over a SQLite store, with the same spec, users and
driver (`engine.sim.drive_users`), so a seed's count is what the demo prints for it.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import Report, arguments, log, md_table
from engine import EventStore, OnlineEngine, load_spec
from engine.sim import drive_users, simulated_users

SPEC = Path("configs/genai.yaml")


def reached(pop_seed: int, users: int, rounds: int) -> int:
    """Users of this population whose recommendation reaches the target within `rounds`."""
    spec = load_spec(SPEC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = OnlineEngine(EventStore(f"sqlite:///{Path(tmp) / 'store.db'}"))
        engine.register(spec)
        people = simulated_users(spec, users, pop_seed)
        _, to_target = drive_users(engine, spec.name, people, rounds, progress=False)
        engine.store.close()
    return int((to_target <= rounds).sum())


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__, "demo-convergence.md")
    parser.add_argument("--pop-seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    report = Report(
        "make demo's convergence over population seeds",
        ["numpy", "scipy"],
        [f"{args.users} users x {args.rounds} ratings, context portrait, model seed 0 (genai.yaml)"],
    )
    rows = []
    for seed in args.pop_seeds:
        count = reached(seed, args.users, args.rounds)
        log(f"population seed {seed}: {count}/{args.users}")
        rows.append([str(seed), f"{count}/{args.users}"])
    report.add(["## Users reaching 4.5 stars within the ratings", ""])
    report.add(md_table(["population seed", "reached"], rows))
    report.write(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
