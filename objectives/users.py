"""Simulated users of an image generator, for the online optimizer's tests and benchmarks.

Each context (portrait, landscape, …) has settings most people like; each user likes a
point near it, prefers a provider, rates on their own scale (bias) and noisily. Expected
stars fall off as a Gaussian bump around the user's preferred point (in the unit cube of
the continuous parameters), so "≥ 4.5 expected stars" is a small region to find.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engine.spec import FloatParam, Space
from objectives.families import BASE_CONTEXTS, Family
from objectives.families import family as _family

__all__ = ["CONTEXTS", "PROVIDERS", "SPACE", "GenAIUsers", "SimulatedUser", "population"]

PROVIDERS = ("leonardo", "stablediffusion")
CONTEXTS = BASE_CONTEXTS
SPACE: dict[str, dict[str, Any]] = {
    "provider": {"type": "categorical", "choices": list(PROVIDERS)},
    "init_strength": {"type": "float", "low": 0.1, "high": 0.5},
    "guidance_scale": {"type": "float", "low": 5.0, "high": 12.0},
    "controlnet_weight": {"type": "float", "low": 0.7, "high": 0.99},
}
CONTINUOUS = ("init_strength", "guidance_scale", "controlnet_weight")
# latency (ms) and cost (USD) per image: leonardo is faster and dearer
LATENCY_MS = {"leonardo": 2500.0, "stablediffusion": 4000.0}
COST_USD = {"leonardo": 0.012, "stablediffusion": 0.004}
WIDTH = 0.25  # bump width in the unit cube
WRONG_PROVIDER = 0.8  # share of the bump left with the provider the user likes less


# the continuous parameters' unit cube, where tastes live (the provider is chosen apart)
UNIT = Space({k: FloatParam(low=SPACE[k]["low"], high=SPACE[k]["high"]) for k in CONTINUOUS})


@dataclass
class SimulatedUser:
    user_id: str
    preferred: dict[str, np.ndarray]  # context -> unit-cube point (their taste at first)
    provider: dict[str, str]  # context -> provider liked more
    bias: float  # added to every rating: some rate high, some low
    noise: float  # rating noise, in stars
    rng: np.random.Generator = field(repr=False, compare=False)
    width: float = WIDTH  # of the bump of expected stars around their taste
    drift: dict[str, np.ndarray] | None = None  # context -> how far their taste moves per step
    drift_every: int = 20  # ratings per drift step
    arrival: int = 0  # rounds the simulation runs before this user's first request
    rated: int = 0  # ratings given so far

    def taste(self, context: str) -> np.ndarray:
        """The unit-cube point this user likes best now."""
        if self.drift is None:
            return self.preferred[context]
        return np.clip(self.preferred[context] + self.drift[context] * (self.rated // self.drift_every), 0, 1)

    def expected_stars(self, params: dict[str, Any], context: str) -> float:
        """The true mean rating, before this user's bias and noise."""
        d = (UNIT.to_unit(params) - self.taste(context)) / self.width
        fit = float(np.exp(-0.5 * d @ d))
        if params["provider"] != self.provider[context]:
            fit *= WRONG_PROVIDER
        return 1.0 + 4.0 * fit

    def rate(self, params: dict[str, Any], context: str) -> int:
        """A 1-5 star rating as this user would give it."""
        raw = self.expected_stars(params, context) + self.bias + self.rng.normal(0, self.noise)
        self.rated += 1
        return int(np.clip(np.rint(raw), 1, 5))

    def signal(self, params: dict[str, Any], context: str) -> str:
        """accept/reject, or like/dislike/super_like, from the same hidden taste."""
        stars = self.rate(params, context)
        return {1: "reject", 2: "dislike", 3: "accept", 4: "like", 5: "super_like"}[stars]

    def best(self, context: str) -> dict[str, Any]:
        return {"provider": self.provider[context], **UNIT.from_unit(self.taste(context))}


def population(n_users: int, seed: int = 0, preset: str | Family = "default") -> list[SimulatedUser]:
    """Users sharing per-context tastes, each with an offset, a bias and noise; `preset`
    names a family of `objectives.families` (the default one unless said otherwise)."""
    fam = _family(preset) if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    # what only other families use comes from a stream of its own: `default` stays as it was
    extra = np.random.default_rng([seed, 1])
    dim = len(CONTINUOUS)
    centres = {c: rng.uniform(0.2, 0.8, size=dim) for c in fam.contexts}
    liked = {c: PROVIDERS[int(rng.integers(len(PROVIDERS)))] for c in fam.contexts}
    users = []
    for i in range(n_users):
        preferred = {c: np.clip(centres[c] + rng.normal(0, fam.spread, dim), 0, 1) for c in fam.contexts}
        provider = {c: liked[c] if rng.random() < 0.8 else _other(liked[c]) for c in fam.contexts}
        user = SimulatedUser(
            user_id=f"user-{i}",
            preferred=preferred,
            provider=provider,
            bias=float(rng.normal(0, fam.bias_sd)),
            noise=float(rng.uniform(*fam.noise)),
            rng=np.random.default_rng(rng.integers(2**32)),
            width=fam.width,
            drift_every=fam.drift_every,
            arrival=(i % fam.waves) * fam.wave_gap,
        )
        if extra.random() < fam.outliers:
            away = fam.outlier_distance  # from every context's centre, in a direction of its own
            user.preferred = {c: np.clip(centres[c] + away * _direction(extra, dim), 0, 1) for c in centres}
        if fam.drift:
            user.drift = {c: fam.drift * _direction(extra, dim) for c in fam.contexts}
        users.append(user)
    return users


def _direction(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A uniformly random unit vector."""
    v = rng.normal(size=dim)
    return np.asarray(v / np.linalg.norm(v))


def _other(provider: str) -> str:
    return PROVIDERS[1 - PROVIDERS.index(provider)]


class GenAIUsers:
    """The image-generation space as an offline objective: a population's mean stars."""

    metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "quality": ("max", "stars"),
        "speed": ("min", "ms"),
        "cost": ("min", "usd"),
    }
    space: ClassVar[dict[str, dict[str, Any]]] = SPACE
    # online contexts may be the input image's features (objectives.images.image_features)
    context_features: ClassVar[int] = 5

    def __init__(
        self, users: int = 50, seed: int = 0, context: str = "portrait", family: str = "default"
    ) -> None:
        """`family`: the population preset (objectives.families) offline and online."""
        self.family = _family(family)
        if context not in self.family.contexts:
            raise ValueError(
                f"context {context!r} is unknown; choose one of {', '.join(self.family.contexts)}"
            )
        if not 1 <= users <= 100_000:
            raise ValueError(f"users={users!r} must be between 1 and 100000")
        self.users = population(users, seed, self.family)
        self.context = context

    def simulated_users(self, n: int, seed: int) -> list[SimulatedUser]:
        """The online phase's users (`frontier simulate`, `make demo` load them by the spec's ref)."""
        return population(n, seed, self.family)

    def evaluate(self, params: dict[str, Any]) -> dict[str, float]:
        stars = [u.expected_stars(params, self.context) for u in self.users]
        steps = 20 + 30 * (params["init_strength"] - 0.1) / 0.4  # stronger init: more steps
        return {
            "quality": float(np.mean(stars)),
            "speed": LATENCY_MS[params["provider"]] * steps / 35,
            "cost": COST_USD[params["provider"]] * steps / 35,
        }
