"""Named families of simulated populations: presets of `objectives.users.population`.

A learner tuned on one population can lock in on another; these families are the
populations it is judged on (benchmarks/online.py), each changing one thing about the
`default` population:

| family | what changes |
|---|---|
| `default` | offsets sd 0.08 from the context's centre, width 0.25, bias sd 0.5, noise 0.3-0.7 |
| `spread` | users spread sd 0.2 around their context's centre |
| `narrow` | bump width 0.12: a much smaller region scores 4.5 stars |
| `harsh` | rater bias sd 0.8, rating noise sd 1.0 |
| `contexts8` | 8 contexts, each with its own centre and liked provider |
| `outliers` | 20% of users like settings 0.3 away from every context's centre |
| `drift` | each user's taste moves 0.1 (in a fixed direction) every 20 of their ratings |
| `staggered` | users arrive in 4 waves, 10 rounds apart |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BASE_CONTEXTS", "FAMILIES", "Family", "family"]

BASE_CONTEXTS = ("portrait", "landscape", "product", "sketch")


@dataclass(frozen=True)
class Family:
    """How a population's tastes spread and how its users rate (unit-cube distances)."""

    name: str
    contexts: tuple[str, ...] = BASE_CONTEXTS
    spread: float = 0.08  # sd of a user's offset from their context's centre
    width: float = 0.25  # width of the bump of expected stars around a user's taste
    bias_sd: float = 0.5  # sd of a user's rating bias, in stars
    noise: tuple[float, float] = (0.3, 0.7)  # a user's rating noise sd, drawn uniformly
    outliers: float = 0.0  # share of users whose taste is `outlier_distance` from every centre
    outlier_distance: float = 0.3
    drift: float = 0.0  # how far a user's taste moves every `drift_every` of their ratings
    drift_every: int = 20
    waves: int = 1  # arrival waves, `wave_gap` rounds apart
    wave_gap: int = 10


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("default"),
        Family("spread", spread=0.2),
        Family("narrow", width=0.12),
        Family("harsh", bias_sd=0.8, noise=(1.0, 1.0)),
        Family("contexts8", contexts=(*BASE_CONTEXTS, "logo", "icon", "poster", "banner")),
        Family("outliers", outliers=0.2),
        Family("drift", drift=0.1),
        Family("staggered", waves=4),
    )
}


def family(name: str) -> Family:
    """The family of that name; a ValueError listing the names otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown population family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]
