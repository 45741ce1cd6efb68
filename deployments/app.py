"""The Serve application: `serve run configs/serve.yaml` or `serve.run(app_builder(args))`.

One deployment, `FrontierAPI`, whose replicas are the state shards (see deployments.api):
Serve's consistent-hash router keeps each user on one replica, the store keeps every
replica right. The admin token comes from the environment where the app is built
(FRONTIER_ADMIN_TOKEN; on a cluster, the environment of `ray start`), never from a file,
and reaches the replicas as an argument.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Any, cast

import ray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from ray.serve import Application, Deployment

from deployments.api import FrontierAPI
from engine.spec import load_spec
from engine.store import DEFAULT_TIMEOUT_S, EventStore, default_store_url

__all__ = ["AppArgs", "app_builder", "register_experiments"]

log = logging.getLogger(__name__)
TOKEN_ENV = "FRONTIER_ADMIN_TOKEN"
# The project the app was imported from: relative spec paths fall back to it, since Ray
# runs the builder in the directory where `ray start` ran (or a runtime_env's working_dir).
PROJECT = Path(__file__).resolve().parents[1]


class AppArgs(BaseModel):
    """What `serve.yaml`'s `args:` may set; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    store_url: str | None = Field(
        default=None, description="default: FRONTIER_STORE, else results/frontier.db"
    )
    experiments: list[str] = Field(
        default_factory=lambda: ["configs/genai.yaml"],
        description=(
            "spec files, globs or folders of *.yaml registered at start (existing ones are kept); "
            "relative ones are looked up in the working directory, then in the project"
        ),
    )
    replicas: int | None = Field(
        default=None, ge=1, description="a fixed number of replicas (state shards); None: autoscale"
    )
    min_replicas: int = Field(default=1, ge=1, description="autoscaling's lower bound")
    max_replicas: int = Field(default=4, ge=1, description="autoscaling's upper bound")
    max_ongoing_requests: int = Field(default=64, ge=1, description="per replica; more go to the next")
    lease_s: float = Field(default=3600.0, gt=0)
    grace_s: float = Field(default=86400.0, ge=0)
    max_users: int = Field(default=10_000, ge=1, description="user states cached per replica")
    max_context_models: int = Field(
        default=64, ge=1, description="context models held per experiment and replica (LRU, rebuilt)"
    )
    peer_sync_s: float = Field(
        default=1.0, ge=0, description="how stale another replica's preference changes may be"
    )
    schedule_poll_s: float = Field(
        default=30.0,
        gt=0,
        description="how often a replica looks for scheduled jobs due (lifecycle.schedule)",
    )
    store_timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S,
        gt=0,
        allow_inf_nan=False,
        description=(
            "how long a store call may wait (PostgreSQL connects wait 2 s at least) before the "
            "request answers 503, and for how long the store then answers 503 at once"
        ),
    )

    @field_validator("experiments")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if not _spec_files(pattern):
                where = " or ".join(str(root) for root in _roots())
                raise ValueError(
                    f"{pattern!r} matches no spec file in {where}; give a .yaml path, glob or "
                    "folder (absolute, or relative to those), or ship the project with the Serve "
                    "config's runtime_env working_dir"
                )
        return v

    @model_validator(mode="after")
    def _bounds(self) -> AppArgs:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} exceeds max_replicas={self.max_replicas}; "
                "raise max_replicas or lower min_replicas"
            )
        return self


def _roots() -> list[Path]:
    return list(dict.fromkeys((Path.cwd(), PROJECT)))


def _spec_files(pattern: str) -> list[Path]:
    """The working directory's matches, else the project's (an absolute pattern is itself)."""
    for root in _roots():
        if found := _matches(root / pattern):
            return found
    return []


def _matches(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.yaml"))
    return [Path(p) for p in sorted(glob.glob(str(path)))]


def register_experiments(store: EventStore, patterns: list[str]) -> list[str]:
    """Store each spec not stored yet; a stored spec of the same name wins (events are final)."""
    names = []
    for pattern in patterns:
        for path in _spec_files(pattern):
            spec = load_spec(path)
            if not store.add_experiment(spec.name, spec.model_dump(mode="json")):
                stored = store.experiment(spec.name)
                if stored is not None and stored["spec"] != spec.model_dump(mode="json"):
                    log.warning(
                        "%s: experiment %r is stored with another spec; serving the stored one",
                        path,
                        spec.name,
                    )
            names.append(spec.name)
    return names


# Ray's consistent-hash router (experimental in Ray 2.60): requests with the same
# `x-session-id` header reach the same replica while the replica set stands; when that
# replica is saturated the next one on the ring takes the request (any replica is right).
ROUTER = {
    "request_router_class": "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter",
    "request_router_kwargs": {"num_fallback_replicas": 1},
}


def alive_nodes() -> int:
    """Nodes of the Ray cluster this process is connected to (1 without Ray: a local one)."""
    if not ray.is_initialized():
        return 1
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def check_store(url: str) -> None:
    """A SQLite file lives on one machine: replicas on other nodes would each open their
    own file, a store split in as many pieces as nodes."""
    if not url.startswith("sqlite"):
        return
    nodes = alive_nodes()
    if nodes > 1:
        raise ValueError(
            f"store_url={url!r} is a SQLite file, but the Ray cluster has {nodes} nodes and each "
            "would keep its own; set store_url (or FRONTIER_STORE in the environment of "
            "`ray start`) to a PostgreSQL URL such as postgresql://user@host/db"
        )
    log.warning(
        "store_url=%r: a SQLite file, fine on one node; on a cluster of several nodes set "
        "FRONTIER_STORE to a PostgreSQL URL",
        url,
    )


def admin_token() -> str | None:
    """The token from the environment where the app is built; warned about when missing."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        log.warning(
            "%s is not set where the app is built, so the admin endpoints answer 403; set it "
            "in the environment of `serve run`, or of `ray start` on a cluster",
            TOKEN_ENV,
        )
    return token


def app_builder(args: AppArgs | dict[str, Any]) -> Application:
    """Build the app (Serve calls this with serve.yaml's `args`)."""
    args = AppArgs.model_validate(args) if isinstance(args, dict) else args
    url = args.store_url or default_store_url()
    check_store(url)
    register_experiments(EventStore(url, args.store_timeout_s), args.experiments)
    options = {
        "lease_s": args.lease_s,
        "grace_s": args.grace_s,
        "max_users": args.max_users,
        "max_context_models": args.max_context_models,
        "peer_sync_s": args.peer_sync_s,
    }
    if args.replicas is not None:
        scaling: dict[str, Any] = {"num_replicas": args.replicas}
    else:
        bounds = {"min_replicas": args.min_replicas, "max_replicas": args.max_replicas}
        scaling = {"num_replicas": "auto", "autoscaling_config": bounds}
    api = cast(Deployment, FrontierAPI).options(
        max_ongoing_requests=args.max_ongoing_requests, request_router_config=ROUTER, **scaling
    )
    return api.bind(url, options, admin_token(), args.store_timeout_s, args.schedule_poll_s)
