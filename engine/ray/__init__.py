"""The Ray adapters: the only place in the engine that imports Ray."""

from engine.ray.runtime import ensure_ray
from engine.ray.shards import Shard, ShardActor, ShardRouter, shard_index
from engine.ray.tune_adapter import TuneSearcher, run_on_tune

__all__ = ["Shard", "ShardActor", "ShardRouter", "TuneSearcher", "ensure_ray", "run_on_tune", "shard_index"]
