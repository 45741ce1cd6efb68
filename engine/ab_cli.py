"""`frontier ab` and `frontier variants`: one code path over a running service (`--url`,
the admin token from FRONTIER_ADMIN_TOKEN) or a store opened directly (`--store`); the
lifecycle's commands (engine.lifecycle_cli) share both backends."""

from __future__ import annotations

import argparse
import io
import json
import os
from typing import Any, Protocol

__all__ = ["ABBackend", "add_commands", "backend", "run", "where_options"]

TOKEN_ENV = "FRONTIER_ADMIN_TOKEN"


class ABBackend(Protocol):
    def variants(self, experiment: str) -> list[dict[str, Any]]: ...
    def create_variant(self, experiment: str, variant: dict[str, Any]) -> dict[str, Any]: ...
    def patch_variant(self, experiment: str, name: str, change: dict[str, Any]) -> dict[str, Any]: ...
    def abtest(self, experiment: str) -> dict[str, Any]: ...
    def decide(self, experiment: str, name: str, action: str) -> dict[str, Any]: ...
    def history(self, experiment: str) -> list[dict[str, Any]]: ...


class _StoreBackend:
    """The engine itself over the store: the same checks the service makes."""

    def __init__(self, url: str) -> None:
        from engine.online import OnlineEngine
        from engine.store import EventStore

        self.engine = OnlineEngine(EventStore(url))

    def variants(self, experiment: str) -> list[dict[str, Any]]:
        return [v.public() for v in self.engine.variants(experiment)]

    def create_variant(self, experiment: str, variant: dict[str, Any]) -> dict[str, Any]:
        from engine.experiments import VariantSpec

        return self.engine.create_variant(experiment, VariantSpec.model_validate(variant)).public()

    def patch_variant(self, experiment: str, name: str, change: dict[str, Any]) -> dict[str, Any]:
        from engine.experiments import VariantPatch

        return self.engine.patch_variant(experiment, name, VariantPatch.model_validate(change)).public()

    def abtest(self, experiment: str) -> dict[str, Any]:
        return self.engine.abtest(experiment)

    def decide(self, experiment: str, name: str, action: str) -> dict[str, Any]:
        if action not in ("promote", "rollback"):
            raise ValueError(f"unknown action {action!r}; use promote or rollback")
        return self.engine.decide(experiment, name, "promote" if action == "promote" else "rollback")

    def history(self, experiment: str) -> list[dict[str, Any]]:
        return self.engine.history(experiment)

    # the lifecycle (engine.lifecycle_cli)

    def versions(self, experiment: str) -> dict[str, Any]:
        return self.engine.versions(experiment)

    def activate(
        self, experiment: str, version: str, reason: str = "requested by an admin"
    ) -> dict[str, Any]:
        return self.engine.activate(experiment, version, reason)

    def retrain(
        self, experiment: str, days: float | None = None, priors: dict[str, float] | None = None
    ) -> dict[str, Any]:
        return self.engine.retrain(experiment, days, priors)

    def schedule(self, experiment: str) -> dict[str, Any]:
        return self.engine.schedule(experiment)

    def export_version(self, experiment: str, version: str) -> tuple[dict[str, Any], bytes]:
        document, table = self.engine.export_version(experiment, version)
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return document, buffer.getvalue()

    def import_version(self, experiment: str, document: dict[str, Any]) -> dict[str, Any]:
        return self.engine.import_version(experiment, document)

    def forget(self, experiment: str, user_id: str) -> dict[str, Any]:
        return self.engine.forget(experiment, user_id)

    def stats(self, experiment: str) -> dict[str, Any]:
        from engine.report import status, stored_spec

        return status(self.engine.store, stored_spec(self.engine.store, experiment))

    def feedback_summary(self, experiment: str, bins: int = 3) -> dict[str, Any]:
        from engine.report import feedback_summary, stored_spec

        return feedback_summary(self.engine.store, stored_spec(self.engine.store, experiment), bins)

    def refine_profile(self, experiment: str, user_id: str) -> dict[str, Any]:
        return self.engine.refine_profile(experiment, user_id)

    def report(self, experiment: str) -> Any:
        """Every format at once: the sections are drawn once."""
        from engine.report import gather, render, stored_spec

        return render(gather(self.engine, stored_spec(self.engine.store, experiment)))


def backend(args: argparse.Namespace) -> Any:
    if args.url:
        from engine.client import FrontierClient

        return FrontierClient(args.url, admin_token=os.environ.get(TOKEN_ENV))
    if args.store:
        return _StoreBackend(args.store)
    raise ValueError("say where the experiment lives: --url http://host:8000 or --store sqlite:///path.db")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ab", help="an experiment's A/B report: variants against the control")
    p.add_argument("experiment")
    where_options(p)
    p.add_argument("--json", action="store_true", help="the report as JSON")

    p = sub.add_parser("variants", help="list, create or change an experiment's variants")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list")
    q.add_argument("experiment")
    where_options(q)
    q = actions.add_parser("create", help="a new variant, or a new version of one")
    q.add_argument("experiment")
    q.add_argument("name")
    q.add_argument("--version", default="1.0.0")
    q.add_argument("--kind", choices=["prompt", "params", "learner"], default="prompt")
    q.add_argument("--payload", default="{}", help='JSON, e.g. \'{"template": "a photo of {subject}"}\'')
    q.add_argument("--weight", type=float, default=1.0)
    q.add_argument("--status", choices=["draft", "running", "paused", "stopped"], default="running")
    q.add_argument("--parent", help="name@version it derives from")
    q.add_argument("--control", action="store_true", help="the variant the others are compared with")
    where_options(q)
    q = actions.add_parser("patch", help="change a variant's weight or status")
    q.add_argument("experiment")
    q.add_argument("name")
    q.add_argument("--weight", type=float)
    q.add_argument("--status", choices=["draft", "running", "paused", "stopped"])
    q.add_argument("--reassign", action="store_true", help="draw every user's variant again")
    where_options(q)
    for action, text in (("promote", "make it the control (the old control stops)"),
                         ("rollback", "stop it: its users get the control")):  # fmt: skip
        q = actions.add_parser(action, help=text)
        q.add_argument("experiment")
        q.add_argument("name")
        where_options(q)
    q = actions.add_parser("history", help="every change, promotions and rollbacks with their statistics")
    q.add_argument("experiment")
    where_options(q)


def where_options(p: argparse.ArgumentParser) -> None:
    """--url or --store: where the experiment lives."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running service (admin token from FRONTIER_ADMIN_TOKEN)")
    where.add_argument("--store", help="open this event store directly, e.g. sqlite:///results/frontier.db")


def run(args: argparse.Namespace) -> int:
    b: ABBackend = backend(args)
    if args.command == "ab":
        report = b.abtest(args.experiment)
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0
    if args.action == "list":
        rows = b.variants(args.experiment)
        for v in rows:
            mark = " (control)" if v["control"] else ""
            print(f"{v['name']}@{v['version']}{mark}  {v['kind']}  {v['status']}  weight {v['weight']:g}")
        if not rows:
            print(f"{args.experiment}: no variants yet; `frontier variants create {args.experiment} NAME`")
        return 0
    if args.action in ("promote", "rollback"):
        event = b.decide(args.experiment, args.name, args.action)
        print(f"{event['variant']}@{event['version']}: {event['change']} (event {event['seq']})")
        return 0
    if args.action == "history":
        for e in b.history(args.experiment):
            by = (e["state"].get("decision") or {}).get("by")
            mark = f" by {by}" if by else ""
            name = f"{e['variant']}@{e['version']}"
            print(f"{e['seq']:>6}  {name}  {e['change']}{mark}  status {e['state']['status']}")
        return 0
    if args.action == "create":
        body = {
            "name": args.name, "version": args.version, "kind": args.kind, "payload": _json(args.payload),
            "weight": args.weight, "status": args.status, "parent": args.parent, "control": args.control,
        }  # fmt: skip
        v = b.create_variant(args.experiment, body)
    else:
        change = {"weight": args.weight, "status": args.status, "reassign": args.reassign or None}
        v = b.patch_variant(args.experiment, args.name, {k: x for k, x in change.items() if x is not None})
    print(
        f"{v['name']}@{v['version']}: {v['status']}, weight {v['weight']:g}"
        + (", control" if v["control"] else "")
    )
    return 0


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'--payload is not JSON ({e}); quote it like \'{{"template": "..."}}\'') from None


def format_report(r: dict[str, Any]) -> str:
    """The report as a table, then the checks and the recommendation."""
    lines = [f"{r['experiment']}: control {r.get('control', '-')}, allocation {r.get('allocation', '-')}"]
    lines.append(
        f"{'variant':<16} {'share':>6} {'users':>6} {'rated':>6} {'mean [CI]':<22} "
        f"{'lift [sequential CI]':<28} {'P(beat)':>7}  decision"
    )
    for v in r["variants"]:
        mean = _ci(v["mean_rating"], v["ci"])
        vs = v.get("vs_control") or {}
        lift = (
            _ci(vs.get("lift"), vs.get("sequential_ci"), signed=True) if vs.get("lift") is not None else "-"
        )
        beat = f"{vs['prob_beat_control']:.2f}" if vs.get("prob_beat_control") is not None else "-"
        name = f"{v['name']}@{v['version']}"
        counts = f"{v['share']:>6.2f} {v['users']:>6} {v['rated_users']:>6}"
        decision = v.get("decision") or "control"
        lines.append(f"{name:<16} {counts} {mean:<22} {lift:<28} {beat:>7}  {decision}")
    srm = r.get("srm")
    if srm:
        verdict = "MISMATCH" if srm["mismatch"] else "ok"
        lines.append(f"sample ratio: {verdict} (p = {srm['p_value']:.3g}; observed {srm['observed']})")
    rec = r["recommendation"]
    lines.append(
        f"recommendation: {rec['action']}"
        + (f" {rec['variant']}" if rec.get("variant") else "")
        + f": {rec['reason']}"
    )
    return "\n".join(lines)


def _ci(mean: float | None, ci: list[float | None] | None, signed: bool = False) -> str:
    if mean is None:
        return "-"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    if not ci or ci[0] is None or ci[1] is None:
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
