"""`frontier feedback-summary` on simulated users with known effects: in each context users
rate one provider about 2 stars above the others, and they undo what they rate low."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main as frontier
from engine.online import Feedback, OnlineEngine
from engine.spec import load_spec
from engine.store import EventStore

SPEC = load_spec("configs/genai.yaml")
LIKED = {"portrait": "leonardo", "landscape": "stablediffusion"}


def test_the_liked_provider_is_found_per_context(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = OnlineEngine(EventStore(url))
    engine.register(SPEC)
    rng = np.random.default_rng(8)
    for round_ in range(10):
        for i in range(30):
            context = list(LIKED)[i % 2]
            s = engine.suggest("genai", f"user-{i}", context)
            truth = 4.0 if s.params["provider"] == LIKED[context] else 2.0
            stars = int(np.clip(round(truth + rng.normal(0, 0.7)), 1, 5))
            if round_ % 4 == 3:  # some answer with a signal instead
                engine.feedback(s.suggestion_id, Feedback(signal="accept" if stars >= 3 else "undo"))
            else:
                engine.feedback(s.suggestion_id, Feedback(rating=stars))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert frontier(["feedback-summary", "genai", "--json", "--store", url]) == 0
    found = json.loads(out.getvalue())
    assert found["feedback"] == 300
    for context, liked in LIKED.items():
        providers = {k: v for k, v in found["contexts"][context]["provider"].items() if v["ratings"] >= 3}
        assert liked in providers and len(providers) >= 2, providers  # something to compare
        for name, other in providers.items():
            if name != liked:  # separated by their intervals, with fewer low ratings and undos
                assert providers[liked]["mean_ci"][0] > other["mean_ci"][1]
                assert providers[liked]["low"]["share"] < other["low"]["share"]
                undo = [p["signals"].get("undo", {"share": 0.0})["share"] for p in (providers[liked], other)]
                assert undo[0] < undo[1]
    everyone = found["contexts"]["all contexts"]
    for name, levels in everyone.items():
        assert sum(v["feedback"] for v in levels.values()) == 300, name  # every row in one level
        for cell in levels.values():
            if cell["signals"]:
                assert sum(v["share"] for v in cell["signals"].values()) == pytest.approx(1.0)
    assert len(everyone["guidance_scale"]) == 3  # quantile bins
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert frontier(["feedback-summary", "genai", "--store", url]) == 0
    assert "provider=leonardo" in text.getvalue() and "low" in text.getvalue()


def test_an_unknown_experiment_is_a_clear_error(tmp_path: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert frontier(["feedback-summary", "nope", "--store", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    assert "experiment 'nope' is not in the store" in err.getvalue()
