"""The A/B report: per variant its users and outcomes with intervals, each against the
control, the sample-ratio check, and a recommendation with its reason. Pure: it reads
members and their outcomes, never the store.

Decisions rest on the sequential test (valid however often the report is read), its
p-values Holm-corrected over the variants compared with the control:
- ship a variant the test finds better than the control;
- stop one it finds worse, or one whose confidence sequence already excludes a lift of
  `min_effect` (futility: it can no longer reach the effect worth shipping);
- otherwise keep running. A sample-ratio mismatch blocks every recommendation: the
  split itself is broken, so no comparison can be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as t_dist

from engine.experiments import stats
from engine.experiments.stats import Summary
from engine.experiments.variants import Variant
from engine.spec import ABSpec

__all__ = ["Member", "Tally", "analyse", "arm_summaries", "guardrails"]

RATING = "rating"


@dataclass
class Tally:
    """A count, sum and sum of squares: all the analysis needs of a user's values, so
    memory grows with users, not with ratings."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    def merge(self, other: Tally) -> None:
        self.n += other.n
        self.total += other.total
        self.squares += other.squares

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


@dataclass
class Member:
    """One user of the experiment: their assignment and what they reported."""

    variant: str
    holdout: bool
    outcomes: dict[str, Tally] = field(default_factory=dict)  # metric -> while served their arm
    pre: Tally = field(default_factory=Tally)  # their ratings before the assignment (CUPED)


def _values(members: Sequence[Member], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Users' means of `metric` (users without any left out) and their pre-period means."""
    rated = [m for m in members if metric in m.outcomes and m.outcomes[metric].n]
    means = np.array([m.outcomes[metric].mean for m in rated], dtype=float)
    return means, np.array([m.pre.mean for m in rated], dtype=float)


def _per_rating(members: Sequence[Member]) -> Summary:
    """Every rating as a sample (`unit: rating`)."""
    found = Tally()
    for m in members:
        if RATING in m.outcomes:
            found.merge(m.outcomes[RATING])
    return (
        Summary.from_sums(found.n, found.total, found.squares)
        if found.n
        else Summary(0, float("nan"), float("nan"))
    )


def arm_summaries(members: Iterable[Member], names: Sequence[str]) -> dict[str, Summary]:
    """Each variant's per-user mean ratings (what a bandit allocates on)."""
    by_arm: dict[str, list[Member]] = {n: [] for n in names}
    for m in members:
        if not m.holdout and m.variant in by_arm:
            by_arm[m.variant].append(m)
    return {n: Summary.of(_values(ms, RATING)[0]) for n, ms in by_arm.items()}


def analyse(
    ab: ABSpec,
    variants: Sequence[Variant],
    control: str,
    members: Iterable[Member],
    shares: Mapping[str, float],
    expected: Mapping[str, float],
    directions: Mapping[str, str],
) -> dict[str, Any]:
    """The report `/abtest` serves. `shares`: each running variant's share of new users;
    `expected`: each variant's expected users, the sum of their assignment chances (SRM);
    `directions`: each metric's "min" or "max" (the guardrails')."""
    members = list(members)
    arms, summaries = _arms(ab, variants, members)
    alpha = 1 - ab.confidence
    ctrl = summaries[control]
    others = [v.name for v in variants if v.name != control]
    seq_p = {n: _sequential_p(ctrl, summaries[n], ab) for n in others}
    holm = dict(zip(others, stats.holm([seq_p[n] for n in others], alpha), strict=True))
    srm = _srm(arms, expected)
    rows = []
    verdicts = {} if srm["mismatch"] else _verdicts(ab, variants, control, arms, summaries, directions)
    for v in variants:
        row = _arm_row(v, arms[v.name], summaries[v.name], ab, shares.get(v.name, 0.0))
        if v.name != control:
            row["vs_control"] = _compare(ctrl, summaries[v.name], ab, seq_p[v.name], holm[v.name])
            row["decision"], row["reason"] = (
                _decide(v.name, control, ctrl, summaries[v.name], row["vs_control"], ab)
                if v.status == "running"
                else (v.status, f"{v.status}: its users are served the control")
            )
        if v.name in verdicts:
            row["guardrail"] = verdicts[v.name]
        rows.append(row)
    holdout = [m for m in members if m.holdout]
    held = Summary.of(_values(holdout, RATING)[0])
    return {
        "control": control,
        "allocation": ab.allocation,
        "unit": ab.unit,
        "unit_note": (
            "per-user mean ratings: each user counts once"
            if ab.unit == "user"
            else "every rating counts as a sample: intervals are too narrow when users rate several times"
        ),
        "cuped": ab.cuped and ab.unit == "user",
        "confidence": ab.confidence,
        "min_effect": ab.min_effect,
        "srm": srm,
        "holdout": {"users": len(holdout), "rated_users": held.n, "mean": _num(held.mean)},
        "variants": rows,
        "recommendation": _recommend(rows, srm, control),
        "power": _power(ctrl, summaries, ab),
    }


def guardrails(
    ab: ABSpec,
    variants: Sequence[Variant],
    control: str,
    members: Iterable[Member],
    expected: Mapping[str, float],
    directions: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """What the guardrails do now to each running variant: `promote` (with `auto`),
    `rollback` (rating below the margin with `auto` or a ramp; a metric of
    `guardrails.metrics` worse than its tolerance), `ramp` (its step held for
    `ramp_users` more rated users), or nothing. None while the sample ratio is off.
    `directions`: each metric's "min" or "max"."""
    arms, summaries = _arms(ab, variants, list(members))
    if _srm(arms, expected)["mismatch"]:
        return {}
    return _verdicts(ab, variants, control, arms, summaries, directions)


def _verdicts(
    ab: ABSpec,
    variants: Sequence[Variant],
    control: str,
    arms: Mapping[str, list[Member]],
    summaries: Mapping[str, Summary],
    directions: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """`guardrails` on arms and summaries computed already."""
    g = ab.guardrails
    running = [v for v in variants if v.name != control and v.status == "running"]
    out = {}
    for v in running:
        verdict = _guardrail(summaries[control], summaries[v.name], ab, len(running))
        if verdict["action"] == "promote" and not g.auto:
            verdict = {**verdict, "action": None, "reason": "promotion is by hand (guardrails.auto is off)"}
        if verdict["action"] == "rollback" and not (g.auto or g.ramp):
            verdict = {**verdict, "action": None, "reason": "rollback is by hand (guardrails.auto is off)"}
        broken = _broken_metric(arms[control], arms[v.name], ab, directions, len(running))
        if broken is not None:
            verdict = broken
        elif verdict["action"] is None and g.ramp and v.cap < 1:
            rated = summaries[v.name].n
            if rated - v.ramp_users >= g.ramp_users:
                held = f"{rated - v.ramp_users} rated users at {v.cap:.0%}, the guardrails hold"
                verdict = {**verdict, "action": "ramp", "rated": rated, "reason": held}
        out[v.name] = verdict
    return out


def _broken_metric(
    ctrl: list[Member], arm: list[Member], ab: ABSpec, directions: Mapping[str, str], compared: int
) -> dict[str, Any] | None:
    """A rollback when the sequential interval shows a guardrail metric worse than the
    control by more than its tolerance (relative to the control's mean)."""
    g = ab.guardrails
    alpha = (1 - ab.confidence) / compared
    for metric, tolerance in g.metrics.items():
        c, s = Summary.of(_values(ctrl, metric)[0]), Summary.of(_values(arm, metric)[0])
        if min(c.n, s.n) < g.min_samples or not c.var + s.var > 0:
            continue
        ci = stats.confidence_sequence(c, s, alpha, ab.sequential_tuning)
        limit = tolerance * abs(c.mean)
        worse = ci.low > limit if directions.get(metric) == "min" else ci.high < -limit
        if worse:
            return {
                "action": "rollback",
                "reason": f"guardrail {metric} broke: {s.mean:.4g} against the control's {c.mean:.4g} "
                f"(interval of the difference [{ci.low:.4g}, {ci.high:.4g}], tolerance {tolerance:.0%})",
                "metric": metric,
                "interval": [ci.low, ci.high],
                "users": [c.n, s.n],
            }
    return None


def _arms(
    ab: ABSpec, variants: Sequence[Variant], members: list[Member]
) -> tuple[dict[str, list[Member]], dict[str, Summary]]:
    """Each variant's members (holdout apart) and the summary of its outcome: per-user
    means, CUPED-adjusted, or every rating (`unit: rating`)."""
    arms = {v.name: [m for m in members if not m.holdout and m.variant == v.name] for v in variants}
    if ab.unit == "rating":
        return arms, {n: _per_rating(ms) for n, ms in arms.items()}
    ratings = {n: _values(ms, RATING) for n, ms in arms.items()}
    if ab.cuped:
        ratings = _cuped(ratings)
    return arms, {n: Summary.of(vals) for n, (vals, _) in ratings.items()}


def _cuped(ratings: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every arm adjusted with one pooled slope, so differences stay unbiased."""
    names = list(ratings)
    post = np.concatenate([ratings[n][0] for n in names]) if names else np.array([])
    pre = np.concatenate([ratings[n][1] for n in names]) if names else np.array([])
    adjusted, _ = stats.cuped(post, pre)
    out, start = {}, 0
    for n in names:
        end = start + len(ratings[n][0])
        out[n] = (adjusted[start:end], ratings[n][1])
        start = end
    return out


def _arm_row(v: Variant, members: list[Member], s: Summary, ab: ABSpec, share: float) -> dict[str, Any]:
    q = _t_quantile(s, ab.confidence)
    half = q * np.sqrt(s.se2) if s.n > 1 else np.nan
    metrics = {}
    names = sorted({k for m in members for k in m.outcomes if k != RATING})
    for name in names:
        vals = _values(members, name)[0]
        capped = stats.winsorize(vals, upper=ab.winsorize) if ab.winsorize and len(vals) > 1 else vals
        ms = Summary.of(capped)
        h = _t_quantile(ms, ab.confidence) * np.sqrt(ms.se2) if ms.n > 1 else np.nan
        metrics[name] = {"users": ms.n, "mean": _num(ms.mean), "ci": [_num(ms.mean - h), _num(ms.mean + h)]}
    return {
        "name": v.name,
        "version": v.version,
        "kind": v.kind,
        "status": v.status,
        "weight": v.weight,
        "share": share,
        "users": len(members),
        "rated_users": s.n,
        "samples": sum(m.outcomes[RATING].n for m in members if RATING in m.outcomes),
        "mean_rating": _num(s.mean),
        "ci": [_num(s.mean - half), _num(s.mean + half)],
        "metrics": metrics,
    }


def _compare(ctrl: Summary, s: Summary, ab: ABSpec, seq_p: float, holm_p: float) -> dict[str, Any]:
    if ctrl.n < 2 or s.n < 2:
        return {"lift": None, "reason": "needs 2 rated users on each side"}
    lift = _guarded(lambda: stats.lift(ctrl, s, ab.confidence))
    seq = _guarded(lambda: stats.confidence_sequence(ctrl, s, 1 - ab.confidence, ab.sequential_tuning))
    if lift is None or seq is None:
        return {"lift": None, "reason": "no spread in the ratings yet"}
    return {
        "lift": lift.absolute,
        "lift_ci": [lift.absolute_ci.low, lift.absolute_ci.high],
        "relative_lift": lift.relative,
        "relative_ci": [lift.relative_ci.low, lift.relative_ci.high],
        "p_value": stats.welch(ctrl, s).p_value,
        "sequential_ci": [seq.low, seq.high],
        "sequential_p": seq_p,
        "sequential_p_holm": holm_p,
        "prob_beat_control": stats.prob_beat_control(ctrl, s),
        "expected_loss": stats.expected_loss(ctrl, s),
        "cohens_d": stats.cohens_d(ctrl, s),
    }


def _decide(
    name: str, control: str, ctrl: Summary, s: Summary, vs: dict[str, Any], ab: ABSpec
) -> tuple[str, str]:
    few = [(n, k) for n, k in ((control, ctrl.n), (name, s.n)) if k < ab.min_users]
    if few:
        return "keep running", ", ".join(
            f"{n} has {k} of the {ab.min_users} rated users needed" for n, k in few
        )
    if vs.get("lift") is None:
        return "keep running", vs.get("reason", "no comparison yet")
    alpha = 1 - ab.confidence
    low, high = vs["sequential_ci"]
    interval = f"sequential {ab.confidence:.0%} interval [{low:+.3f}, {high:+.3f}]"
    if vs["sequential_p_holm"] < alpha and vs["lift"] > 0:
        p = vs["sequential_p_holm"]
        return "ship", f"better than {control} by {vs['lift']:+.3f} stars ({interval}, Holm p {p:.3g})"
    if vs["sequential_p_holm"] < alpha:
        return "stop", f"worse than {control} by {vs['lift']:+.3f} stars ({interval})"
    if high < ab.min_effect:
        return "stop", f"futile: the {interval} excludes the +{ab.min_effect} worth shipping"
    return "keep running", f"not yet decided: the {interval} holds 0 and +{ab.min_effect}"


def _guardrail(ctrl: Summary, s: Summary, ab: ABSpec, compared: int) -> dict[str, Any]:
    """Promote or roll back by the guardrails' margins, on the sequential interval at
    alpha / (variants compared) so that the family of decisions keeps its level."""
    g = ab.guardrails
    if min(ctrl.n, s.n) < g.min_samples or not ctrl.var + s.var > 0:
        return {"action": None, "reason": f"needs {g.min_samples} rated users on each side"}
    alpha = (1 - ab.confidence) / compared
    ci = stats.confidence_sequence(ctrl, s, alpha, ab.sequential_tuning)
    found = {
        "interval": [ci.low, ci.high],
        "alpha": alpha,
        "lift": s.mean - ctrl.mean,
        "users": [ctrl.n, s.n],
    }
    if ci.low > g.promote_margin:
        return {
            "action": "promote",
            "reason": f"better than the control by more than {g.promote_margin}",
            **found,
        }
    if ci.high < -g.rollback_margin:
        return {
            "action": "rollback",
            "reason": f"worse than the control by more than {g.rollback_margin}",
            **found,
        }
    return {"action": None, "reason": "within the margins", **found}


def _recommend(rows: list[dict[str, Any]], srm: dict[str, Any], control: str) -> dict[str, str]:
    if srm["mismatch"]:
        return {
            "action": "blocked",
            "reason": (
                f"sample ratio mismatch (p = {srm['p_value']:.2g}): the split is broken; "
                "fix the assignment before trusting any result"
            ),
        }
    decided = [r for r in rows if r.get("decision") in ("ship", "stop", "keep running")]  # running ones
    ships = [r for r in decided if r["decision"] == "ship"]
    if ships:
        best = max(ships, key=lambda r: r["mean_rating"])
        return {"action": "ship", "variant": best["name"], "reason": best["reason"]}
    if decided and all(r["decision"] == "stop" for r in decided):
        return {
            "action": "stop",
            "variant": control,
            "reason": "; ".join(f"{r['name']}: {r['reason']}" for r in decided),
        }
    if not decided:
        return {"action": "keep running", "reason": "no running variant to compare with the control"}
    return {"action": "keep running", "reason": "; ".join(f"{r['name']}: {r['reason']}" for r in decided)}


def _srm(arms: Mapping[str, list[Member]], expected: Mapping[str, float]) -> dict[str, Any]:
    """Observed assignments against their expectation: the sum over users of each
    variant's share when the user was assigned (exact under weight changes and bandits)."""
    names = list(arms)
    observed = [len(arms[n]) for n in names]
    want = [float(expected.get(n, 0.0)) for n in names]
    live = [i for i, e in enumerate(want) if e > 0]
    if sum(observed) < 2 or len(live) < 2:
        return {"observed": observed, "expected": want, "p_value": 1.0, "mismatch": False}
    found = stats.sample_ratio([observed[i] for i in live], [want[i] for i in live])
    return {
        "observed": observed,
        "expected": want,
        "chi2": found.chi2,
        "p_value": found.p_value,
        "mismatch": found.mismatch,
    }


def _power(ctrl: Summary, summaries: Mapping[str, Summary], ab: ABSpec) -> dict[str, Any]:
    spreads = [s.var for s in summaries.values() if s.n > 1 and s.var > 0]
    if not spreads or ctrl.n < 2:
        return {"note": "needs 2 rated users in the control"}
    sd = float(np.sqrt(np.mean(spreads)))
    return {
        "sd": sd,
        "mde_now": stats.minimum_detectable_effect(sd, ctrl.n, 1 - ab.confidence),
        "users_per_variant_for_min_effect": stats.users_needed(ab.min_effect, sd, 1 - ab.confidence),
    }


def _sequential_p(ctrl: Summary, s: Summary, ab: ABSpec) -> float:
    if min(ctrl.n, s.n) < 2 or not ctrl.var + s.var > 0:
        return 1.0
    return stats.sequential_p_value(ctrl, s, 1 - ab.confidence, ab.sequential_tuning)


def _t_quantile(s: Summary, confidence: float) -> float:
    return float(t_dist.ppf(0.5 + confidence / 2, max(s.n - 1, 1)))


def _guarded(f: Any) -> Any:
    """A statistic that cannot be computed yet (no spread, one user) is None, not an error."""
    with np.errstate(all="ignore"):
        try:
            value = f()
        except (ZeroDivisionError, ValueError, FloatingPointError):
            return None
    return value


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
