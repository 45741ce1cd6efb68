"""The Ray adapters: where the engine's work runs on Ray (Tune trials, state shards), and
its metrics on Ray's metrics pipeline.

With `engine.sim` and `engine.cli`, which choose to run there, the only part of the engine
that imports Ray (an import-linter contract in pyproject.toml)."""

from engine.ray.metrics import ExplorationMetrics, MeasuredRequests, ServeMetrics, serve_metrics
from engine.ray.runtime import ensure_ray
from engine.ray.shards import Shard, ShardActor, ShardRouter
from engine.ray.tune_adapter import TuneSearcher, run_on_tune

__all__ = [
    "ExplorationMetrics",
    "MeasuredRequests",
    "ServeMetrics",
    "Shard",
    "ShardActor",
    "ShardRouter",
    "TuneSearcher",
    "ensure_ray",
    "run_on_tune",
    "serve_metrics",
]
