"""The Ray adapters: the only place in the engine that imports Ray."""

from engine.ray.tune_adapter import TuneSearcher, run_on_tune

__all__ = ["TuneSearcher", "run_on_tune"]
