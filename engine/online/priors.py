"""The online model's constants: kernel shape, noise levels and shrinkage, in reward units.

Defaults chosen on tuning seeds over every population family (benchmarks/online_priors.py).
What is fitted to each experiment's own data while it runs: the population levels' noise and
weight scale (the defaults here are only their hyperpriors' centres) and the context models'
pull towards the global model (engine/online/regression.py), the raters' bias and scale,
and with a published offline front its surfaces and their scales
(engine/online/front_prior.py). See docs/online-model.md, 'Priors'.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Priors"]


@dataclass(frozen=True)
class Priors:
    """Model constants, in reward units (rewards live in [-1, 1])."""

    lengthscale: float = 0.2  # in the unit cube of the continuous parameters
    arm_share: float = 0.8  # how much of the shape is shared between arms
    arm_offset: float = 0.3  # prior std of a user's own offset for an arm (e.g. a provider)
    user_amplitude: float = 1.0  # how far a user's taste departs from the context's
    noise: float = 0.3  # rating noise
    population_noise: float = 0.45  # rating noise plus between-user spread (hyperprior centre; fitted)
    weight_scale: float = 1.0  # prior std of the population model's weights (hyperprior centre; fitted)
    bias_shrinkage: float = 3.0  # pseudo-ratings pulling a user's bias towards 0
    half_life: float = 50.0  # ratings after which an old one counts half
    features: int = 96  # random Fourier frequencies (each block of a feature vector has as many)
    candidates: int = 256  # fixed quasi-random points, each tried in every arm
