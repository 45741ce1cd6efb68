"""Pattern analysis for objectives over a set of images (vectorize): does each kind of image
want settings of its own, and how much does it gain over one global setting?

1. Group the images into patterns: Ward clustering (SciPy) of their standardised features
   (the objective's `pattern_features()`: log colours, edge density, entropy, flat,
   smooth and dominant-colour shares), at most `max_patterns`, each named after what its
   centre looks like (flat colour and logos, text and greyscale, gradients, photos).
2. Explore the spec once over every image (the global setting: the front point preferred
   under the spec's weights), and once per pattern over its images only.
3. Per pattern, on its images: the global setting's quality and cost against the
   pattern's own trials, as quality (SSIM) at equal cost (the best quality of a trial
   costing no more) and as cost at equal quality (the cheapest trial of no lower quality).
   The rule is the trial with the larger gain; its confidence is the share of the
   pattern's images on which it beats the global setting on that criterion. Gains are
   measured on the images each exploration chose on, so they favour the rule: the
   per-image share says how broadly it holds.
4. Write `rules.json` (patterns, how to assign a new image, rules, gains, confidence)
   and `patterns.md`, which says plainly when no pattern gains `GAIN_WORTH` or more.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from engine.offline.explore import Runner, explore
from engine.offline.pareto import feasible, metric_column
from engine.spec import ExperimentSpec

__all__ = ["FEATURES", "GAIN_WORTH", "Pattern", "analyse_patterns", "assign_pattern", "find_patterns"]

FEATURES = ("log_colors", "edge_density", "entropy", "flat", "smooth", "dominant")
GAIN_WORTH = 0.10  # a pattern whose rule gains less is not worth a rule of its own
QUALITY, COST = "quality", "cost"


@dataclass(frozen=True)
class Pattern:
    name: str
    images: list[int]  # indices into the objective's images
    centre: dict[str, float]  # mean raw features of its images


def _matrix(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[math.log(max(f["colors"], 1.0)), *(f[k] for k in FEATURES[1:])] for f in features])


def _scaling(features: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    """The features' mean and spread (1 where a feature does not vary): how to standardise."""
    x = _matrix(features)
    std = x.std(axis=0)
    return {"mean": x.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def find_patterns(features: Sequence[Mapping[str, float]], max_patterns: int = 4) -> list[Pattern]:
    """Ward clusters of the standardised features, at most `max_patterns` and half the
    images (a pattern of one image is allowed: it is what the data shows)."""
    x, scale = _matrix(features), _scaling(features)
    k = max(1, min(max_patterns, len(features) // 2))
    z = (x - np.array(scale["mean"])) / np.array(scale["std"])
    labels = fcluster(linkage(z, "ward"), k, "maxclust") if len(features) > 1 else np.ones(1, dtype=int)
    patterns: list[Pattern] = []
    taken: set[str] = set()
    for label in sorted(set(labels), key=lambda lab: int(np.flatnonzero(labels == lab)[0])):
        members = [int(i) for i in np.flatnonzero(labels == label)]
        centre = dict(zip(FEATURES, x[members].mean(axis=0).tolist(), strict=True))
        name = base = _name(centre)
        while name in taken:  # a second pattern that looks alike: "photos 2"
            name = f"{base} {sum(t.startswith(base) for t in taken) + 1}"
        taken.add(name)
        patterns.append(Pattern(name, members, centre))
    return patterns


def _name(c: Mapping[str, float]) -> str:
    """What a pattern's centre looks like (descriptive only: the clusters come from the data)."""
    if c["dominant"] >= 0.93 or (c["flat"] >= 0.3 and c["edge_density"] < 0.08):
        return "flat colour and logos"  # two colours nearly everywhere, or large flat areas
    if c["log_colors"] <= math.log(256) and c["edge_density"] >= 0.08:
        return "text and greyscale"
    if c["smooth"] >= 0.5 and c["edge_density"] <= 0.06:
        return "gradients"
    return "photos"


def assign_pattern(rules: Mapping[str, Any], features: Mapping[str, float]) -> str:
    """The pattern of `rules.json` whose centre is nearest to an image's features (from
    `pattern_features`), in the standardised space the patterns were found in."""
    scale = rules["assign"]
    z = (_matrix([features])[0] - np.array(scale["mean"])) / np.array(scale["std"])
    centres = {p["name"]: (np.array([p["centre"][k] for k in FEATURES]) - scale["mean"]) / scale["std"]
               for p in rules["patterns"]}  # fmt: skip
    return min(centres, key=lambda name: float(np.sum((centres[name] - z) ** 2)))


def analyse_patterns(
    spec: ExperimentSpec,
    out_dir: Path,
    *,
    runner: Runner,
    global_trials: int,
    trials_per_pattern: int,
    max_patterns: int = 4,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Find the patterns, explore, measure the rules against the global setting; writes
    `rules.json` and `patterns.md` in `out_dir` and returns the rules."""
    objective = spec.objective.build()
    for needed in ("paths", "pattern_features", "evaluate_image"):
        if not hasattr(objective, needed):
            raise ValueError(
                f"objective {spec.objective.ref!r} has no `{needed}`: pattern analysis needs an "
                "objective over a set of images (objectives.images.ImageObjective)"
            )
    names = {m.name for m in spec.metrics}
    if not {QUALITY, COST} <= names:
        raise ValueError(
            f"pattern analysis compares metrics {QUALITY!r} and {COST!r}; {spec.name!r} has {sorted(names)}"
        )
    features = objective.pattern_features()
    patterns = find_patterns(features, max_patterns)
    progress(f"{len(patterns)} patterns: " + "; ".join(f"{p.name} ({len(p.images)})" for p in patterns))
    progress(f"global: {global_trials} trials over all {len(features)} images")
    overall = explore(_budget(spec, global_trials), out_dir / "global", runner=runner, progress=False)
    if overall.preferred is None:
        raise ValueError(
            "the global exploration found no feasible setting; raise global_trials or relax constraints"
        )
    global_params = _params(overall.front.loc[overall.preferred], spec)
    found = []
    for pattern in patterns:
        progress(f"{pattern.name}: {trials_per_pattern} trials over {len(pattern.images)} images")
        images = [objective.paths[i] for i in pattern.images]
        pattern_spec = _budget(spec, trials_per_pattern, images, suffix=_slug(pattern.name))
        summary = explore(pattern_spec, out_dir / _slug(pattern.name), runner=runner, progress=False)
        trials = pd.read_parquet(summary.out_dir / "trials.parquet")
        found.append(
            _measure(
                objective, spec, pattern, global_params, trials, [features[i]["name"] for i in pattern.images]
            )
        )
    worth = [p for p in found if (p["gain"]["value"] or 0.0) >= GAIN_WORTH]
    rules = {
        "experiment": spec.name,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "images": len(features),
        "features": list(FEATURES),
        "assign": _scaling(features),
        "global": {"params": global_params, "trials": global_trials},
        "trials_per_pattern": trials_per_pattern,
        "gain_worth": GAIN_WORTH,
        "patterns": found,
        "verdict": _verdict(found, worth),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rules.json").write_text(json.dumps(rules, indent=2) + "\n")
    (out_dir / "patterns.md").write_text(_markdown(rules))
    return rules


def _budget(
    spec: ExperimentSpec, trials: int, images: list[str] | None = None, suffix: str = ""
) -> ExperimentSpec:
    data = spec.model_dump(mode="json")
    data["budget"] = {**data["budget"], "trials": trials}
    if images is not None:
        data["objective"]["options"] = {**(data["objective"].get("options") or {}), "images": images}
    if suffix:
        data["name"] = f"{spec.name}-{suffix}"[:64]
    return ExperimentSpec.model_validate(data)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pattern"


def _params(row: pd.Series, spec: ExperimentSpec) -> dict[str, Any]:
    space = spec.search_space()
    found = {**space.fixed, **{p: row[f"param.{p}"] for p in space.free}}
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in found.items()}


def _measure(
    objective: Any,
    spec: ExperimentSpec,
    pattern: Pattern,
    global_params: dict[str, Any],
    trials: pd.DataFrame,
    names: list[str],
) -> dict[str, Any]:
    """The pattern's rule and its gain over the global setting, on the pattern's images."""
    per_image = [objective.evaluate_image(global_params, i) for i in pattern.images]
    q_global = float(np.mean([r[QUALITY] for r in per_image]))
    c_global = float(np.mean([r[COST] for r in per_image]))
    ok = trials[feasible(trials, spec.metrics)]
    q, c = ok[metric_column(QUALITY)], ok[metric_column(COST)]
    options = []
    cheaper = ok[c <= c_global]
    if len(cheaper):  # quality at equal cost
        best = cheaper.loc[cheaper[metric_column(QUALITY)].idxmax()]
        options.append(("quality at equal cost", float(best[metric_column(QUALITY)]) / q_global - 1.0, best))
    better = ok[q >= q_global]
    if len(better):  # cost at equal quality
        best = better.loc[better[metric_column(COST)].idxmin()]
        options.append(("cost at equal quality", 1.0 - float(best[metric_column(COST)]) / c_global, best))
    out: dict[str, Any] = {
        "name": pattern.name,
        "images": names,
        "centre": pattern.centre,
        "global": {QUALITY: q_global, COST: c_global},
    }
    if not options:
        return {**out, "rule": None, "gain": {"kind": None, "value": None}, "confidence": 0.0,
                "note": "no trial of this pattern costs no more or reaches the global quality"}  # fmt: skip
    out["gains"] = {k: g for k, g, _ in options}  # both, where a trial qualifies
    kind, gain, best = max(options, key=lambda o: o[1])
    if gain <= 0:
        return {**out, "rule": None, "gain": {"kind": kind, "value": 0.0}, "confidence": 0.0,
                "note": "no trial of this pattern beats the global setting: keep it"}  # fmt: skip
    rule = _params(best, spec)
    mine = [objective.evaluate_image(rule, i) for i in pattern.images]
    key, sign = (QUALITY, 1.0) if kind.startswith(QUALITY) else (COST, -1.0)
    wins = sum(sign * (m[key] - g[key]) > 0 for m, g in zip(mine, per_image, strict=True))
    return {
        **out,
        "rule": rule,
        "rule_metrics": {
            QUALITY: float(best[metric_column(QUALITY)]),
            COST: float(best[metric_column(COST)]),
        },
        "gain": {"kind": kind, "value": gain},
        "confidence": wins / len(pattern.images),
        "confidence_means": f"{wins} of {len(pattern.images)} images do better with the rule on {key}",
    }


def _verdict(found: list[dict[str, Any]], worth: list[dict[str, Any]]) -> str:
    if not worth:
        best = max((p["gain"]["value"] or 0.0 for p in found), default=0.0)
        return (
            f"No pattern gains {GAIN_WORTH:.0%} over the global setting on these images (the best "
            f"gains {best:.1%}): one global setting serves them all about as well."
        )
    listed = ", ".join(f"{p['name']} ({p['gain']['value']:.0%} {p['gain']['kind']})" for p in worth)
    return f"{len(worth)} of {len(found)} patterns gain {GAIN_WORTH:.0%} or more with a rule: {listed}."


def _markdown(rules: Mapping[str, Any]) -> str:
    lines = [
        f"# Patterns of {rules['experiment']} ({rules['generated_at']})",
        "",
        rules["verdict"],
        "",
        f"{rules['images']} images; the global setting is the preferred point of "
        f"{rules['global']['trials']} trials over all of them; each pattern explored "
        f"{rules['trials_per_pattern']} trials over its own images.",
        "Gains are measured on the images explored; confidence is the share of the pattern's images on",
        "which the rule beats the global setting on the metric it gains.",
        "",
        "| pattern | images | global quality | global cost | gain | confidence |",
        "|---|---|---|---|---|---|",
    ]
    for p in rules["patterns"]:
        gain = f"{p['gain']['value']:+.1%} {p['gain']['kind']}" if p["rule"] is not None else p["note"]
        lines.append(
            f"| {p['name']} | {', '.join(p['images'])} | {p['global'][QUALITY]:.4f} | "
            f"{p['global'][COST]:.0f} | {gain} | {p['confidence']:.0%} |"
        )
    lines += ["", "Rules (settings per pattern; none: the global setting):", ""]
    for p in rules["patterns"]:
        lines.append(f"- {p['name']}: `{json.dumps(p['rule'])}`")
    lines.append(f"- global: `{json.dumps(rules['global']['params'])}`")
    return "\n".join(lines) + "\n"
