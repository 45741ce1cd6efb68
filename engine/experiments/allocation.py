"""Who gets which variant: salted hashes for reproducible splits, and the shares a fixed
split, Thompson sampling or UCB gives each running variant. Pure functions.

A user's uniform draw is a hash of (salt, user), so the same user lands in the same place
on every replica and after restarts, and experiments with different salts are
independent. Bandits decide only new users' variant (users are sticky); a floor keeps
every running variant's share at `floor` or more, so none starves and the statistics
stay valid (every arm keeps being measured).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from engine.experiments.stats import Summary

__all__ = ["THOMPSON_DRAWS", "capped", "pick", "shares", "unit_hash"]

THOMPSON_DRAWS = 4096  # Monte Carlo draws for P(best); its error (<= 0.008) is below the floor's scale


def unit_hash(salt: str, user_id: str) -> float:
    """A uniform draw in [0, 1) fixed by (salt, user)."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(shares_: Mapping[str, float], u: float) -> str:
    """The variant whose slice of [0, 1) holds `u`, slices in the mapping's order."""
    total = sum(shares_.values())
    edge = 0.0
    for name, share in shares_.items():
        edge += share / total
        if u < edge:
            return name
    return next(reversed(list(shares_)))  # u within rounding of 1


def shares(
    policy: str,
    weights: Mapping[str, float],
    arms: Mapping[str, Summary],
    floor: float,
    seed: int = 0,
) -> dict[str, float]:
    """Each running variant's share of new users (summing to 1), in `weights`' order.

    `weights`: the fixed split's weights; `arms`: each variant's per-user outcomes so far.
    Thompson: the posterior probability that the variant is best (normal posteriors of
    the means under a flat prior, a variant with fewer than 2 users counting as unknown:
    the pooled mean with the pooled spread); UCB: the variant of highest upper bound
    (mean + sqrt(2 ln N) standard errors) takes what the floors leave (tied ones share it).
    """
    names = list(weights)
    if policy == "fixed" or len(names) == 1:
        total = sum(weights.values())
        return {n: weights[n] / total for n in names}
    means, ses = _posteriors(names, arms)
    if policy == "thompson":
        rng = np.random.default_rng([seed, *(arms[n].n if n in arms else 0 for n in names)])
        draws = rng.normal(means, ses, size=(THOMPSON_DRAWS, len(names)))
        best = np.bincount(draws.argmax(axis=1), minlength=len(names)) / THOMPSON_DRAWS
    elif policy == "ucb":
        users = sum(arms[n].n for n in names if n in arms)
        bound = means + np.sqrt(2 * np.log(max(users, 2))) * ses
        top = bound == bound.max()  # before any data every bound ties: split evenly
        best = top / top.sum()
    else:
        raise ValueError(f"unknown allocation {policy!r}; use fixed, thompson or ucb")
    floor = min(floor, 1.0 / len(names))
    return {n: float(floor + (1 - floor * len(names)) * b) for n, b in zip(names, best, strict=True)}


def _posteriors(names: Sequence[str], arms: Mapping[str, Summary]) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard errors, a variant with too few users at the pooled values."""
    known = [arms[n] for n in names if n in arms and arms[n].n >= 2 and arms[n].var > 0]
    if known:
        pooled_mean = float(np.mean([s.mean for s in known]))
        pooled_sd = float(np.sqrt(np.mean([s.var for s in known])))
    else:
        pooled_mean, pooled_sd = 0.0, 1.0
    means, ses = [], []
    for n in names:
        s = arms.get(n)
        if s is None or s.n < 2 or not s.var > 0:
            means.append(pooled_mean)
            ses.append(pooled_sd)  # as unsure as one user's outcome
        else:
            means.append(s.mean)
            ses.append(float(np.sqrt(s.se2)))
    return np.asarray(means), np.asarray(ses)


def capped(shares_: Mapping[str, float], caps: Mapping[str, float]) -> dict[str, float]:
    """Shares with each variant held to its cap (a ramp's step), what the caps free given
    to the uncapped in proportion to their shares (all of it to the first when none has
    any); still summing to 1 while one variant is uncapped."""
    out = dict(shares_)
    for _ in range(len(out)):  # capping may push another over its cap: repeat
        over = {n: s - caps[n] for n, s in out.items() if n in caps and s > caps[n] + 1e-12}
        if not over:
            break
        free = [n for n in out if out[n] < caps.get(n, 1.0) - 1e-12 and n not in over]
        for n in over:
            out[n] = caps[n]
        spare = sum(over.values())
        base = sum(out[n] for n in free)
        for n in free:
            out[n] += spare * (out[n] / base if base > 0 else (1.0 if n == free[0] else 0.0))
    return out
