"""Simulated vectorize users, defined over the objective's measured metrics.

The measurements (`measure`): the spec's own offline exploration (configs/vectorize.yaml,
run in process and published to a store, as `frontier explore --store` does), and a
Sobol sample of the space measured the same way, which the exploration never saw. A
Gaussian process per metric (scikit-learn, hyperparameters by marginal likelihood) fitted
on the Sobol sample is the ground truth between measured points: SSIM, and the logarithms
of ms and bytes per image.

A user weighs quality, speed and cost by their own weights (Dirichlet(1, 1, 1) draws);
they see quality and rate it in stars, linear in SSIM between the sample's 10th and 95th
percentiles, with rating noise, and the client reports the measured time and size. Their
true utility is the weighted mean of the expected stars' reward and the metrics' terms,
exactly as `engine.online.rewards.utility` scores their feedback on their weights.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from benchmarks.harness import log
from engine.offline.explore import explore, run_local
from engine.online.rewards import metric_score
from engine.spec import CategoricalParam, ExperimentSpec, load_spec
from engine.store import EventStore

SPEC = Path("configs/vectorize.yaml")
METRICS = ("quality", "speed", "cost")
STAR_NOISE = 0.5  # rating noise, in stars
POOL = 4096  # Sobol points where each user's best achievable utility is looked for


def measure(path: Path, sampled: int, seed: int = 0) -> None:
    """Run the spec's exploration and measure `sampled` Sobol points; write both as JSON."""
    spec = load_spec(SPEC)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.db'}"
        log(f"exploring {SPEC} ({spec.budget.trials} trials, {spec.searcher.name}) in process")
        explore(spec, Path(tmp) / "explore", runner=run_local, store=url, progress=False)
        store = EventStore(url)
        (explored,) = store.published_runs(spec.name).values()
        store.close()
    objective = spec.objective.build()
    space = spec.search_space()
    rows = []
    for i, u in enumerate(qmc.Sobol(len(space.free), seed=seed).random(sampled)):
        params = {**space.fixed, **space.from_unit(u)}
        rows.append({"params": params, "metrics": objective.evaluate(params)})
        if (i + 1) % 32 == 0:
            log(f"measured {i + 1}/{sampled} Sobol points")
    keep = ("trial_id", "status", "params", "metrics")
    data = {
        "spec": str(SPEC),
        "explored": [{k: r[k] for k in keep} for r in explored],
        "sampled": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=0))


class Truth:
    """The measured metrics between measured points: one GP per metric."""

    def __init__(self, spec: ExperimentSpec, sampled: Sequence[Mapping[str, Any]]) -> None:
        self.space = spec.search_space()
        self.metrics = {m.name: m for m in spec.metrics}
        x = self.inputs([r["params"] for r in sampled])
        self.models = {}
        for name in METRICS:
            y = np.array([float(r["metrics"][name]) for r in sampled])
            # a parameter that does not matter takes a length scale at the upper bound
            kernel = ConstantKernel() * RBF(np.ones(x.shape[1]), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1.0))
            gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.models[name] = gp.fit(x, y if name == "quality" else np.log(y))
        ssim = np.array([float(r["metrics"]["quality"]) for r in sampled])
        self.ssim_range = tuple(np.percentile(ssim, [10, 95]))  # 1 star to 5 stars
        pool = qmc.Sobol(len(self.space.free), seed=1).random(POOL)
        self.pool_terms = self.terms([{**self.space.fixed, **self.space.from_unit(u)} for u in pool])

    def inputs(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Continuous parameters in the unit cube, categorical ones one-hot."""
        rows = []
        for p in params:
            unit = self.space.to_unit(p)
            row: list[float] = []
            for name, u in zip(self.space.free, unit, strict=True):
                spec = self.space.params[name]
                if isinstance(spec, CategoricalParam):
                    row += [float(p[name] == c) for c in spec.choices]
                else:
                    row.append(float(u))
            rows.append(row)
        return np.array(rows)

    def measured(self, params: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        x = self.inputs(params)
        out = {name: gp.predict(x) for name, gp in self.models.items()}
        return {name: v if name == "quality" else np.exp(v) for name, v in out.items()}

    def stars(self, ssim: np.ndarray) -> np.ndarray:
        """Expected stars of a rendering of this SSIM."""
        lo, hi = self.ssim_range
        return 1 + 4 * np.clip((ssim - lo) / (hi - lo), 0, 1)

    def terms(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Per setting, the reward terms (quality from expected stars, speed, cost): n x 3."""
        m = self.measured(params)
        quality = (self.stars(m["quality"]) - 3) / 2
        speed = [metric_score(v, self.metrics["speed"]) for v in m["speed"]]
        cost = [metric_score(v, self.metrics["cost"]) for v in m["cost"]]
        return np.column_stack([quality, speed, cost])


@dataclass
class VectorizeUser:
    user_id: str
    weights: dict[str, float]
    best: float  # the highest true utility over the pool
    rng: np.random.Generator

    def utility(self, terms: np.ndarray) -> np.ndarray:
        w = np.array([self.weights[m] for m in METRICS])
        return terms @ (w / w.sum())

    def feedback(self, truth: Truth, params: Mapping[str, Any]) -> dict[str, Any]:
        """A rating of what they see, and the time and size the client measured."""
        m = truth.measured([params])
        stars = truth.stars(m["quality"])[0] + self.rng.normal(0, STAR_NOISE)
        speed = float(m["speed"][0] * np.exp(self.rng.normal(0, 0.1)))  # timing noise
        return {
            "rating": int(np.clip(np.rint(stars), 1, 5)),
            "metrics": {"speed": speed, "cost": float(m["cost"][0])},
        }


def users(truth: Truth, n: int, seed: int) -> list[VectorizeUser]:
    rng = np.random.default_rng(seed)
    people = []
    for i in range(n):
        weights = dict(zip(METRICS, map(float, rng.dirichlet(np.ones(3))), strict=True))
        person = VectorizeUser(f"v{seed}-{i}", weights, 0.0, np.random.default_rng([seed, i]))
        person.best = float(person.utility(truth.pool_terms).max())
        people.append(person)
    return people
