"""The `frontier` command: validate specs, explore them, print fronts, run A/B tests, export."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine import ab_cli, lifecycle_cli
from engine.client import FrontierHTTPError
from engine.offline import ResumeError, format_front
from engine.spec import SpecError, load_spec

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frontier", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a spec and its objective without running anything")
    p.add_argument("spec", type=Path)

    p = sub.add_parser("explore", help="map the Pareto front of a spec on Ray Tune")
    p.add_argument("spec", type=Path)
    p.add_argument("--out", type=Path, help="results folder (default: results/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue the exploration stored in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--backend",
        choices=["ray", "local"],
        default="ray",
        help="ray: trials on Ray Tune workers (default); local: one by one in this process",
    )
    p.add_argument("--store", help="also publish the trials to this event store (the API serves its front)")

    p = sub.add_parser("front", help="print the Pareto front stored in a results folder")
    p.add_argument("results", type=Path)

    p = sub.add_parser("simulate", help="simulated users against the online engine on Ray")
    p.add_argument("spec", type=Path)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--population-seed", type=int, help="seed of the simulated users (default: the spec's)")
    p.add_argument("--out", type=Path, help="results folder (default: results/<experiment>-simulation)")
    p.add_argument("--store", help="store URL (default: a fresh SQLite file in --out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("export", help="write every table of an experiment, one file per table")
    p.add_argument("experiment")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--out", type=Path, help="folder (default: results/<experiment>-export)")
    p.add_argument("--store", help="store URL (default: FRONTIER_STORE, else results/frontier.db)")

    p = sub.add_parser("status", help="an experiment's numbers: users, ratings, convergence, trend")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true", help="everything, as JSON")
    ab_cli.where_options(p)

    p = sub.add_parser("feedback-summary", help="which settings users rate well, low, accept or undo")
    p.add_argument("experiment")
    p.add_argument("--bins", type=int, default=3, help="quantile bins per numeric parameter")
    p.add_argument("--json", action="store_true", help="everything, as JSON")
    ab_cli.where_options(p)

    p = sub.add_parser("refine-profile", help="how a user's preferred settings moved with each feedback")
    p.add_argument("experiment")
    p.add_argument("user")
    p.add_argument("--json", action="store_true", help="every step, as JSON")
    ab_cli.where_options(p)

    p = sub.add_parser("patterns", help="group a spec's images into patterns and measure per-pattern rules")
    p.add_argument("spec")
    p.add_argument("--out", type=Path, help="results folder (default: results/<experiment>-patterns)")
    p.add_argument("--trials", type=int, default=40, help="trials of the global exploration")
    p.add_argument("--trials-per-pattern", type=int, default=30)
    p.add_argument("--max-patterns", type=int, default=4)
    p.add_argument("--backend", choices=["ray", "local"], default="ray", help="as for explore")

    p = sub.add_parser("report", help="an experiment's report with plots, as HTML and PDF")
    p.add_argument("experiment")
    p.add_argument("--out", type=Path, help="folder (default: results/<experiment>-report)")
    ab_cli.where_options(p)

    ab_cli.add_commands(sub)
    lifecycle_cli.add_commands(sub)

    args = parser.parse_args(argv)
    try:
        if args.command in ("ab", "variants"):
            return ab_cli.run(args)
        if args.command in lifecycle_cli.COMMANDS:
            return lifecycle_cli.run(args)
        if args.command == "validate":
            return _validate(args.spec)
        if args.command == "explore":
            return _explore(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "export":
            return _export(args)
        if args.command == "status":
            return _status(args)
        if args.command == "feedback-summary":
            return _feedback_summary(args)
        if args.command == "refine-profile":
            return _refine_profile(args)
        if args.command == "report":
            return _report(args)
        if args.command == "patterns":
            return _patterns(args)
        return _front(args.results)
    except FrontierHTTPError as e:
        print(f"frontier {args.command}: {e}", file=sys.stderr)
        return 2
    except (SpecError, ResumeError, ValueError, OSError) as e:  # OSError: files, and requests' errors
        print(f"frontier {args.command}: {e}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    from engine.report import export_experiment
    from engine.store import EventStore

    out = args.out or Path("results") / f"{args.experiment}-export"
    written = export_experiment(EventStore(args.store), args.experiment, out, args.format)
    for table, (path, rows) in written.items():
        print(f"{table:<12} {rows:>8} rows  {path}")
    return 0


def _status(args: argparse.Namespace) -> int:
    found = _reader(args).stats(args.experiment)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(f"{found['experiment']}: {found['users']} users, {found['suggestions']} suggestions, "
          f"{found['feedback']} feedback ({_share(found['feedback_rate'])} of suggestions)")  # fmt: skip
    if not found.get("ratings"):
        print("no ratings yet")
        return 0
    convergence, share = found["convergence"], _share(found["share_4_or_more"])
    print(f"ratings {found['ratings']}: mean {found['mean_rating']:.2f}, 4+ stars {share}, best "
          f"{found['best_rating']:g}")  # fmt: skip
    print(f"convergence {_share(convergence['score'])}: {convergence['definition']}")
    groups = [(f"context {k}", row) for k, row in found["by_context"].items()]
    groups += [(f"variant {k}", row) for k, row in found["by_variant"].items()]
    groups += [(f"{p}={v}", row) for p, values in found["by_parameter"].items() for v, row in values.items()]
    for title, row in groups:
        win = _share(row["win_rate"])
        print(f"  {title}: {row['ratings']} ratings, mean {row['mean_rating']:.2f}, win {win}")
    trend = " ".join(f"{b['mean']:.2f}" for b in found["trend"])
    print(f"trend (mean per 10 ratings): {trend}")
    agreement = found["rater_agreement"]
    alpha = f"{agreement['alpha']:.2f}" if agreement["alpha"] is not None else agreement["note"]
    print(f"rater agreement (Krippendorff's alpha): {alpha}")
    return 0


def _feedback_summary(args: argparse.Namespace) -> int:
    found = _reader(args).feedback_summary(args.experiment, args.bins)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for context, params in found["contexts"].items():
        print(f"{context}:")
        for param, levels in params.items():
            for level, cell in levels.items():
                if not cell["ratings"]:
                    continue
                low, high = cell["mean_ci"]
                ci = f"[{low:.2f}, {high:.2f}]" if low is not None else ""
                signals = ", ".join(f"{s} {_share(v['share'])}" for s, v in cell["signals"].items())
                line = f"  {param}={level}: {cell['ratings']} ratings, mean {cell['mean_rating']:.2f} {ci}"
                print(f"{line}, low {_share(cell['low']['share'])}" + (f"; {signals}" if signals else ""))
    return 0


def _refine_profile(args: argparse.Namespace) -> int:
    from engine.online.explain import format_value

    found = _reader(args).refine_profile(args.experiment, args.user)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(f"{found['user_id']} in {found['experiment']}: {len(found['steps'])} feedback, replayed with "
          f"{found['replayed_with']}")  # fmt: skip
    for step in found["steps"]:
        confidence = f", confidence {_share(step['confidence'])}" if "confidence" in step else ""
        print(f"  #{step['seq']} {step['context']}: {step['why']}{confidence}")
    last = {s["context"]: s["preferred"] for s in found["steps"] if "preferred" in s}
    for context, params in last.items():
        print(
            f"now preferred in {context}: " + ", ".join(f"{k}={format_value(v)}" for k, v in params.items())
        )
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from engine.offline import run_local
    from engine.offline.patterns import analyse_patterns
    from engine.ray import run_on_tune

    spec = load_spec(args.spec)
    out = args.out or Path("results") / f"{spec.name}-patterns"
    rules = analyse_patterns(
        spec,
        out,
        runner=run_local if args.backend == "local" else run_on_tune,
        global_trials=args.trials,
        trials_per_pattern=args.trials_per_pattern,
        max_patterns=args.max_patterns,
        progress=lambda line: print(line, flush=True),
    )
    print(rules["verdict"])
    print(f"rules:  {(out / 'rules.json').resolve()}")
    print(f"report: {(out / 'patterns.md').resolve()}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from engine.report import FORMATS, Report, write_report

    reader = _reader(args)
    if args.url:  # one request per format
        report = Report({fmt: reader.report(args.experiment, fmt) for fmt in FORMATS})
    else:
        report = reader.report(args.experiment)
    for path in write_report(report, args.out or Path("results") / f"{args.experiment}-report"):
        print(path.resolve())
    return 0


def _reader(args: argparse.Namespace) -> Any:
    """The service (--url) or the store (--store, default FRONTIER_STORE or results/frontier.db)."""
    if not args.url and not args.store:
        from engine.store import default_store_url

        args.store = default_store_url()
    return ab_cli.backend(args)


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _validate(path: Path) -> int:
    spec = load_spec(path)
    objective = spec.objective.build()
    space = spec.search_space(type(objective))
    print(f"{path}: ok — experiment {spec.name!r}, objective {spec.objective.ref}")
    print(f"  {len(space.free)} free parameters: {', '.join(space.free)}")
    print(f"  metrics: {', '.join(f'{m.name} ({m.direction})' for m in spec.metrics)}")
    print(f"  searcher {spec.searcher.name}, budget {spec.budget.model_dump(exclude_none=True)}")
    return 0


def _explore(args: argparse.Namespace) -> int:
    from engine.offline import default_out_dir, explore, run_local
    from engine.ray import run_on_tune

    spec = load_spec(args.spec)
    summary = explore(
        spec,
        args.out or default_out_dir(spec),
        resume=args.resume,
        progress=not args.no_progress,
        runner=run_local if args.backend == "local" else run_on_tune,
        store=args.store,
    )
    print(
        f"{spec.name}: {summary.trials} trials ({summary.completed} completed, "
        f"{summary.infeasible} infeasible, {summary.failed} failed), "
        f"hypervolume {summary.hypervolume:.6g}, {len(summary.front)} on the front"
    )
    print(format_front(summary.front))
    out_dir = summary.out_dir.resolve()
    print(f"results: {out_dir / 'trials.parquet'}")
    print(f"         {out_dir / 'front.parquet'}")
    print(f"         {out_dir / 'summary.json'}")
    if args.store:
        print(f"published to {args.store}")
    return 0 if summary.completed else 1


def _simulate(args: argparse.Namespace) -> int:
    from engine.sim import simulate

    spec = load_spec(args.spec)
    out = args.out or Path("results") / f"{spec.name}-simulation"
    result = simulate(
        spec, args.users, args.rounds, out, store_url=args.store, shards=args.shards,
        progress=not args.no_progress, population_seed=args.population_seed,
    )  # fmt: skip
    to_target = result.ratings_to_target
    never = int((to_target > args.rounds).sum())
    print(
        f"{spec.name}: {args.users} simulated users x {args.rounds} rounds; ratings until the "
        f"recommended settings score >= 4.5 stars: median {to_target.median():.1f}, "
        f"IQR {to_target.quantile(0.25):.0f}-{to_target.quantile(0.75):.0f}, {never} never"
    )
    curve = result.rounds.groupby("round")[["stars", "recommended_stars"]].mean()
    marks = sorted({1, 2, 3, 5, 10, 15, 20, 30, 40, args.rounds} & set(curve.index))
    print("round  mean rating  recommended (expected stars)")
    for r in marks:
        print(f"{r:>5}  {curve.at[r, 'stars']:>11.2f}  {curve.at[r, 'recommended_stars']:>10.2f}")
    for name in ("simulation", "suggestions", "feedback"):
        print(f"results: {(result.out_dir / f'{name}.parquet').resolve()}")
    return 0


def _front(results: Path) -> int:
    path = results / "front.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `frontier explore` with --out {results}")
    summary = json.loads((results / "summary.json").read_text())
    print(
        f"{summary['experiment']}: {len(pd.read_parquet(path))} on the front of "
        f"{summary['trials']} trials, hypervolume {summary['hypervolume']:.6g}"
    )
    print(format_front(pd.read_parquet(path)))
    return 0
