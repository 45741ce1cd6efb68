"""How a user's profile moved, feedback by feedback, and why (`frontier refine-profile`).

The user's stored feedback is replayed in order into a fresh history per context (and
per learner: each feedback with the learner of the variant that served it), and
after each piece the preferred settings are recomputed as `profile` computes them: with
the population model, the rater calibration and the weights of now, so every step
differs from the one before only by that feedback. Each step names the parameter that
moved most (in unit-cube terms, a categorical change counting as a full move), by how
much, and whether towards the rated settings or away from them.
"""

from __future__ import annotations

from typing import Any

from engine.online.protocol import context_label, stored_feedback, stored_reward
from engine.online.rater import Rater
from engine.online.state import Experiment
from engine.online.user_gp import UserHistory
from engine.spec import Space

__all__ = ["format_value", "profile_steps"]


def profile_steps(exp: Experiment, user_id: str) -> list[dict[str, Any]]:
    """One step per stored feedback of the user, oldest first, each explained with the
    learner of the variant that served it."""
    weights = exp.store.preferences(exp.spec.name, user_id)
    rater = exp.raters.get(user_id, Rater())
    space = exp.spec.search_space()
    histories: dict[tuple[str, str], UserHistory] = {}
    preferred: dict[tuple[str, str], dict[str, Any]] = {}  # after the last step, per learner and context
    steps = []
    for row in exp.store.feedback_since(exp.spec.name, 0, user_id=user_id):
        label = context_label(row["context"]) or ""
        key, model = exp.learner(row["variant"])
        history = histories.setdefault((key, label), UserHistory())
        exp.ensure_context_model(label or None, key)
        before = preferred.get((key, label)) or model.recommend(rater, history, label or None, weights)[0]
        feedback = stored_feedback(row)
        step: dict[str, Any] = {
            "seq": row["seq"],
            "context": label or "default",
            "feedback": feedback.model_dump(exclude_none=True),
            "rated": row["params"],
        }
        try:
            reward = stored_reward(exp.spec, row, weights)
        except (ValueError, KeyError, TypeError):
            reward = None
        if reward is None:
            steps.append({**step, "reward": None, "why": "carries nothing the weights in force value"})
            continue
        model.remember(history, row["params"], reward)
        after, mean, std = model.recommend(rater, history, label or None, weights)
        preferred[key, label] = after
        moves = space.moves(before, after)
        step.update(
            reward=reward,
            preferred=after,
            expected_reward=mean,
            confidence=model.confidence(std),
            moves={n: m for n, m in moves.items() if m > 0},
        )
        step["why"] = _why(step, before, space)
        steps.append(step)
    return steps


def _why(step: dict[str, Any], before: dict[str, Any], space: Space) -> str:
    said = ", ".join(f"{k} {v}" for k, v in step["feedback"].items() if k in ("rating", "signal"))
    said = f"{said or 'measured metrics'} (reward {step['reward']:.2f})"
    if not step["moves"]:
        return f"{said}: the preferred settings stay"
    name = max(step["moves"], key=step["moves"].__getitem__)
    rated, old, new = step["rated"][name], format_value(before[name]), format_value(step["preferred"][name])
    gap_after, gap_before = (space.moves(ends, step["rated"])[name] for ends in (step["preferred"], before))
    where = (
        "towards it"
        if gap_after < gap_before
        else "away from it"
        if gap_after > gap_before
        else "as far from it"
    )
    return f"{said} at {name}={format_value(rated)}: {name} {old} -> {new}, {where}"


def format_value(value: Any) -> str:
    """A parameter's value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
