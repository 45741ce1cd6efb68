"""New candidate variants derived from the best performers, as an experiment runs.

Two kinds, taken in turn (`ab.evolution.kinds`):
- a parameter preset: the learner's current best settings per context, for a user it knows
  nothing of yet (a `params` variant whose `payload.contexts` maps each context to them);
- a prompt template: the best template's clauses, then the runner-up's that it lacks, then
  an edit per issue users named most in the best variant's comments ("too dark" adds
  "bright lighting"; engine.experiments.comments tags them).

A candidate is a variant like any other, created through the log with a key that names its
generation, so replicas that decide at once create it once; it starts small (its weight,
and the guardrails' ramp when one is configured) and is measured and judged as the others.

Our own: recombining prompts by clauses and steering them with named issues is specific to
this product; no maintained library does it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from engine.experiments.variants import Variant, VariantSpec

__all__ = ["EDITS", "EVOLVED", "MAX_CLAUSES", "preset", "recombine"]

EVOLVED = "evolved-"  # candidates are named evolved-<generation>
MAX_CLAUSES = 12
# what a template gains when users name an issue (issues of settings, not of the prompt,
# such as "too slow", have no edit: a parameter preset addresses them)
EDITS: dict[str, str] = {
    "too dark": "bright lighting",
    "too bright": "soft, even lighting",
    "blurry": "sharp focus, fine detail",
    "wrong style": "in the requested style",
    "wrong colors": "true-to-life colors",
    "artifacts": "clean, without artifacts",
    "wrong content": "exactly as described",
    "text errors": "legible, correctly spelled text",
}


def _clauses(template: str) -> list[str]:
    return [c.strip() for c in template.split(",") if c.strip()]


def recombine(
    ranked: Sequence[Variant], issues: Counter[str], name: str, evolution: Mapping[str, Any], weight: float
) -> VariantSpec | None:
    """A prompt candidate from the best two prompt variants (best first) and the issues named
    in the best one's comments; None when it would repeat a prompt variant's template."""
    parents = [v for v in ranked if v.kind == "prompt" and isinstance(v.payload.get("template"), str)]
    if not parents:
        return None
    best = parents[0]
    clauses = _clauses(best.payload["template"])
    for other in parents[1:2]:
        clauses += [c for c in _clauses(other.payload["template"]) if c not in clauses]
    named = [i for i, _ in issues.most_common() if i in EDITS][:2]
    edits = [EDITS[i] for i in named]
    clauses = [c for c in clauses if c not in edits][: MAX_CLAUSES - len(edits)] + edits
    template = ", ".join(clauses)
    if template in {v.payload["template"] for v in parents}:
        return None  # nothing new
    payload = {**best.payload, "template": template, "evolution": {**evolution, "edits": edits}}
    reason = f"evolution {evolution.get('generation')}: recombined " + " and ".join(
        f"{v.name}@{v.version}" for v in parents[:2]
    )
    if named:
        reason += f"; edits for {', '.join(named)}"
    parent = f"{best.name}@{best.version}"
    return VariantSpec(name=name, kind="prompt", payload=payload, parent=parent, weight=weight, reason=reason)


def preset(
    best: Variant | None,
    settings: Mapping[str, dict[str, Any]],
    name: str,
    evolution: Mapping[str, Any],
    weight: float,
) -> VariantSpec | None:
    """A parameter preset from the learner's best settings per context (label -> params;
    "" is the default context); None when the learner has no rated context yet."""
    if not settings:
        return None
    default = settings.get("") or next(iter(settings.values()))
    payload = {
        "params": default,
        "contexts": {k: v for k, v in settings.items() if k},
        "evolution": dict(evolution),
    }
    parent = f"{best.name}@{best.version}" if best is not None else None
    reason = (
        f"evolution {evolution.get('generation')}: the learner's best settings in {len(settings)} contexts"
    )
    return VariantSpec(name=name, kind="params", payload=payload, parent=parent, weight=weight, reason=reason)
