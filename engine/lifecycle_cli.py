"""`frontier models`, `frontier retrain`, `frontier schedule`, `frontier forget`: an
experiment's model versions, their retraining, and deleting a user's data, over a running
service (`--url`) or a store (`--store`), as engine.ab_cli's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Protocol

from engine.ab_cli import backend, where_options

__all__ = ["COMMANDS", "LifecycleBackend", "add_commands", "run"]

COMMANDS = ("models", "retrain", "schedule", "forget")


class LifecycleBackend(Protocol):
    def versions(self, experiment: str) -> dict[str, Any]: ...
    def activate(self, experiment: str, version: str, reason: str = ...) -> dict[str, Any]: ...
    def retrain(
        self, experiment: str, days: float | None = None, priors: dict[str, float] | None = None
    ) -> dict[str, Any]: ...
    def schedule(self, experiment: str) -> dict[str, Any]: ...
    def export_version(self, experiment: str, version: str) -> tuple[dict[str, Any], bytes]: ...
    def import_version(self, experiment: str, document: dict[str, Any]) -> dict[str, Any]: ...
    def forget(self, experiment: str, user_id: str) -> dict[str, Any]: ...


def add_commands(sub: Any) -> None:
    p = sub.add_parser("models", help="an experiment's model versions: list, activate, export, import")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="every version with its status, and the activations")
    q.add_argument("experiment")
    where_options(q)
    q = actions.add_parser("activate", help="serve a version from now on (an earlier one: a rollback)")
    q.add_argument("experiment")
    q.add_argument("version")
    q.add_argument("--reason", default="requested by an admin")
    where_options(q)
    q = actions.add_parser("export", help="write VERSION as OUT.json and its fitted feedback as OUT.parquet")
    q.add_argument("experiment")
    q.add_argument("version")
    q.add_argument("--out", type=Path, required=True, help="path without suffix, e.g. results/model-1.1.0")
    where_options(q)
    q = actions.add_parser("import", help="a version exported elsewhere, as a new major version (a draft)")
    q.add_argument("experiment")
    q.add_argument("file", type=Path, help="the exported .json")
    where_options(q)

    p = sub.add_parser("retrain", help="refit the learner now; activated only if it beats the active one")
    p.add_argument("experiment")
    p.add_argument(
        "--days", type=float, help="recent feedback to fit on (default: the spec's lifecycle.days)"
    )
    p.add_argument("--priors", help="judge these constants instead of a fit, e.g. '{\"noise\": 0.25}'")
    where_options(p)

    p = sub.add_parser("schedule", help="the retrain schedule, the next run, the last runs")
    p.add_argument("experiment")
    where_options(p)

    p = sub.add_parser("forget", help="delete every event of a user (every replica forgets them)")
    p.add_argument("experiment")
    p.add_argument("user_id")
    where_options(p)


def run(args: argparse.Namespace) -> int:
    b: LifecycleBackend = backend(args)
    if args.command == "forget":
        deleted = b.forget(args.experiment, args.user_id)["deleted"]
        rows = ", ".join(f"{n} {table}" for table, n in deleted.items())
        print(f"{args.user_id}: deleted from {args.experiment} ({rows})")
    elif args.command == "retrain":
        priors = json.loads(args.priors) if args.priors else None
        result = b.retrain(args.experiment, args.days, priors)
        print(_retrained(result))
    elif args.command == "schedule":
        s = b.schedule(args.experiment)
        cron = f"{s['schedule'] or 'none'} ({s['cron'] or '-'}, UTC)"
        print(f"{args.experiment}: schedule {cron}; next run {s['next_run']}")
        for r in s["runs"]:
            outcome = (r.get("result") or {}).get("status") or (r.get("result") or {}).get("error", "")
            print(f"  {r['started_at']}  {r['trigger']:<8} {r['status']:<9} {outcome}")
    elif args.action == "list":
        listing = b.versions(args.experiment)
        for v in listing["versions"]:
            print(f"{v['version']:<10} {v['status']:<8} parent {v['parent'] or '-':<8} {v['reason']}")
    elif args.action == "activate":
        event = b.activate(args.experiment, args.version, args.reason)
        print(f"{event['version']}: activated (was {event['previous']}; event {event['seq']})")
    elif args.action == "export":
        document, table = b.export_version(args.experiment, args.version)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(document, indent=2))
        args.out.with_suffix(".parquet").write_bytes(table)
        json_path, table_path = args.out.with_suffix(".json"), args.out.with_suffix(".parquet")
        print(f"wrote {json_path} and {table_path} ({document['rows']} rows)")
    else:
        imported = b.import_version(args.experiment, json.loads(args.file.read_text()))
        print(f"{imported['version']}: imported as a draft ({imported['reason']})")
    return 0


def _retrained(result: dict[str, Any]) -> str:
    if result["status"] == "skipped":
        return f"skipped: {result['reason']}"
    version = result["version"]
    return f"{version['version']}: {result['status']} ({version['reason']})"
