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

__all__ = ["CONTEXTS", "PROVIDERS", "SPACE", "GenAIUsers", "SimulatedUser", "population"]

PROVIDERS = ("leonardo", "stablediffusion")
CONTEXTS = ("portrait", "landscape", "product", "sketch")
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


@dataclass(frozen=True)
class SimulatedUser:
    user_id: str
    preferred: dict[str, np.ndarray]  # context -> unit-cube point
    provider: dict[str, str]  # context -> provider liked more
    bias: float  # added to every rating: some rate high, some low
    noise: float  # rating noise, in stars
    rng: np.random.Generator = field(repr=False, compare=False)

    def expected_stars(self, params: dict[str, Any], context: str) -> float:
        """The true mean rating, before this user's bias and noise."""
        d = (UNIT.to_unit(params) - self.preferred[context]) / WIDTH
        fit = float(np.exp(-0.5 * d @ d))
        if params["provider"] != self.provider[context]:
            fit *= WRONG_PROVIDER
        return 1.0 + 4.0 * fit

    def rate(self, params: dict[str, Any], context: str) -> int:
        """A 1-5 star rating as this user would give it."""
        raw = self.expected_stars(params, context) + self.bias + self.rng.normal(0, self.noise)
        return int(np.clip(np.rint(raw), 1, 5))

    def signal(self, params: dict[str, Any], context: str) -> str:
        """accept/reject, or like/dislike/super_like, from the same hidden taste."""
        stars = self.rate(params, context)
        return {1: "reject", 2: "dislike", 3: "accept", 4: "like", 5: "super_like"}[stars]

    def best(self, context: str) -> dict[str, Any]:
        return {"provider": self.provider[context], **UNIT.from_unit(self.preferred[context])}


def population(n_users: int, seed: int = 0) -> list[SimulatedUser]:
    """Users sharing per-context tastes, each with an offset, a bias and noise."""
    rng = np.random.default_rng(seed)
    centres = {c: rng.uniform(0.2, 0.8, size=len(CONTINUOUS)) for c in CONTEXTS}
    liked = {c: PROVIDERS[int(rng.integers(len(PROVIDERS)))] for c in CONTEXTS}
    users = []
    for i in range(n_users):
        preferred = {c: np.clip(centres[c] + rng.normal(0, 0.08, len(CONTINUOUS)), 0, 1) for c in CONTEXTS}
        provider = {c: liked[c] if rng.random() < 0.8 else _other(liked[c]) for c in CONTEXTS}
        users.append(
            SimulatedUser(
                user_id=f"user-{i}",
                preferred=preferred,
                provider=provider,
                bias=float(rng.normal(0, 0.5)),
                noise=float(rng.uniform(0.3, 0.7)),
                rng=np.random.default_rng(rng.integers(2**32)),
            )
        )
    return users


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

    def __init__(self, users: int = 50, seed: int = 0, context: str = "portrait") -> None:
        if context not in CONTEXTS:
            raise ValueError(f"context {context!r} is unknown; choose one of {', '.join(CONTEXTS)}")
        if not 1 <= users <= 100_000:
            raise ValueError(f"users={users!r} must be between 1 and 100000")
        self.users = population(users, seed)
        self.context = context

    def simulated_users(self, n: int, seed: int) -> list[SimulatedUser]:
        """The online phase's users (`frontier simulate`, `make demo` load them by the spec's ref)."""
        return population(n, seed)

    def evaluate(self, params: dict[str, Any]) -> dict[str, float]:
        stars = [u.expected_stars(params, self.context) for u in self.users]
        steps = 20 + 30 * (params["init_strength"] - 0.1) / 0.4  # stronger init: more steps
        return {
            "quality": float(np.mean(stars)),
            "speed": LATENCY_MS[params["provider"]] * steps / 35,
            "cost": COST_USD[params["provider"]] * steps / 35,
        }
