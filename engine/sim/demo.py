"""`make demo`: the whole loop on a local Ray, with embedded defaults.

1. Explore configs/vectorize.yaml offline on Ray Tune; publish the trials to the store.
2. Start the Serve app (configs/serve.yaml's defaults) over the same SQLite store.
3. Drive simulated image-generation users through real HTTP: suggest, rate, feedback.
4. Print the offline front as served by /pareto, how users converged, where results went;
   write each experiment's report (HTML and PDF) as GET /v1/experiments/{name}/report serves it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from engine.client import FrontierClient, HttpOnline
from engine.offline import explore, format_front
from engine.ports import free_port
from engine.ray import run_on_tune
from engine.report import FORMATS, Report, write_report
from engine.sim.driver import TARGET_STARS, drive_users, simulated_users
from engine.spec import import_ref, load_spec
from engine.store import EventStore

SERVE_CONFIG = Path("configs/serve.yaml")
ONLINE_SPEC = Path("configs/genai.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--population-seed", type=int, default=0, help="seed of the simulated users (the model's: the spec's)"
    )
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("frontier.db*"):
        stale.unlink()
    store_url = f"sqlite:///{out / 'frontier.db'}"

    print("== 1. offline: exploring configs/vectorize.yaml on Ray Tune", flush=True)
    vectorize = load_spec("configs/vectorize.yaml")
    summary = explore(vectorize, out / "vectorize", runner=run_on_tune, store=store_url)

    print("\n== 2. online: starting the Serve app", flush=True)
    from ray import serve

    # the application configs/serve.yaml deploys, imported by its import_path as `serve run` does
    (application,) = yaml.safe_load(SERVE_CONFIG.read_text())["applications"]
    app_builder = import_ref(application["import_path"], f"{SERVE_CONFIG} import_path")
    port = free_port(8000)
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
    app = app_builder({"store_url": store_url, "experiments": [str(ONLINE_SPEC)], "replicas": 2})
    serve.run(app, name="frontier", route_prefix="/", logging_config={"log_level": "WARNING"})
    base = f"http://127.0.0.1:{port}"
    client = FrontierClient(base)
    print(f"API at {base} (OpenAPI: {base}/docs)")

    served = client.pareto("vectorize")
    print(
        f"GET /v1/experiments/vectorize/pareto: {len(served['front'])} points on the front of "
        f"{served['trials']} trials, hypervolume {served['hypervolume']:.6g}"
    )
    print(format_front(summary.front))

    print(f"\n== 3. {args.users} simulated users x {args.rounds} ratings over HTTP", flush=True)
    genai = load_spec(ONLINE_SPEC)
    people = simulated_users(genai, args.users, args.population_seed)
    table, to_target = drive_users(HttpOnline(client), genai.name, people, args.rounds)
    online = out / "online"
    online.mkdir(exist_ok=True)
    table.to_parquet(online / "simulation.parquet", index=False)
    store = EventStore(store_url)
    for name in ("suggestions", "feedback"):
        store.export(name, online / f"{name}.parquet")
    reports = {  # as GET /v1/experiments/{name}/report serves them
        name: write_report(Report({fmt: client.report(name, fmt) for fmt in FORMATS}), out / "reports" / name)
        for name in (vectorize.name, genai.name)
    }
    serve.shutdown()

    curve = table.groupby("round")["recommended_stars"].mean()
    reached = to_target[to_target <= args.rounds]
    print("mean expected stars of each user's recommended settings, by rating:")
    print("  " + " ".join(f"{v:.2f}" for v in curve.to_numpy()))
    print(
        f"{len(reached)}/{len(people)} users reached {TARGET_STARS} stars within {args.rounds} ratings "
        f"(population seed {args.population_seed}, model seed {genai.seed}; "
        f"median {np.median(to_target):.0f} ratings; {args.rounds + 1} counts a user who did not)"
    )
    print("\nresults:")
    print(f"  offline trials and front: {out / 'vectorize'}/trials.parquet, front.parquet")
    print(f"  online ratings:           {online / 'simulation.parquet'}")
    print(f"  events (SQLite store):    {out / 'frontier.db'} (exports in {online})")
    for name, paths in reports.items():
        print(f"  report of {name + ':':<15} " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
