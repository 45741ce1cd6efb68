"""`frontier status` and GET …/stats: the numbers match what is computed independently from
`frontier export`'s Parquet files."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.cli import main as frontier
from engine.experiments import VariantSpec
from engine.online import Feedback, OnlineEngine
from engine.spec import load_spec
from engine.store import EventStore
from objectives.users import population

SPEC = load_spec("configs/genai.yaml")


def run(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert frontier(list(args)) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Simulated users in two contexts and two variants; some answer with a signal instead
    of a rating, and a few suggestions get no feedback."""
    url = f"sqlite:///{tmp_path_factory.mktemp('status') / 'store.db'}"
    engine = OnlineEngine(EventStore(url))
    engine.register(SPEC)
    engine.create_variant(
        "genai", VariantSpec(name="plain", control=True, payload={"template": "a {subject}"})
    )
    engine.create_variant("genai", VariantSpec(name="vivid", payload={"template": "a vivid {subject}"}))
    rng = np.random.default_rng(2)
    for round_ in range(8):
        for i, person in enumerate(population(16, seed=5)):
            context = ("portrait", "landscape")[i % 2]
            s = engine.suggest("genai", person.user_id, context)
            if rng.random() < 0.1:
                continue  # no feedback
            if round_ % 3 == 2:
                engine.feedback(
                    s.suggestion_id, Feedback.model_validate({"signal": person.signal(s.params, context)})
                )
            else:
                engine.feedback(s.suggestion_id, Feedback(rating=person.rate(s.params, context)))
    return url


def test_status_matches_the_exported_tables(url: str, tmp_path: Path) -> None:
    found = json.loads(run("status", "genai", "--json", "--store", url))
    run("export", "genai", "--store", url, "--out", str(tmp_path))
    suggestions = pd.read_parquet(tmp_path / "suggestions.parquet")
    feedback = pd.read_parquet(tmp_path / "feedback.parquet")
    joined = feedback.merge(
        suggestions[["suggestion_id", "params", "context", "variant"]], on="suggestion_id"
    )
    rated = joined[joined["rating"].notna()]
    assert found["users"] == suggestions["user_id"].nunique() == 16
    assert (found["suggestions"], found["feedback"]) == (len(suggestions), len(feedback))
    assert found["feedback_rate"] == pytest.approx(len(feedback) / len(suggestions))
    assert found["ratings"] == len(rated)
    assert found["mean_rating"] == pytest.approx(rated["rating"].mean())
    assert found["share_4_or_more"] == pytest.approx((rated["rating"] >= 4).mean())
    assert found["best_rating"] == rated["rating"].max()
    last3 = rated.sort_values("seq").groupby("user_id")["rating"].agg(lambda r: r.iloc[-3:].mean())
    assert found["convergence"]["score"] == pytest.approx((last3 >= 4).mean())
    contexts = rated["context"].map(lambda c: json.loads(c)["label"] if c.startswith("{") else json.loads(c))
    for label, group in rated.groupby(contexts):
        row = found["by_context"][label]
        assert (row["ratings"], row["mean_rating"]) == (len(group), pytest.approx(group["rating"].mean()))
    providers = rated["params"].map(lambda p: json.loads(p)["provider"])
    for provider, group in rated.groupby(providers):
        assert found["by_parameter"]["provider"][provider]["win_rate"] == pytest.approx(
            (group["rating"] >= 4).mean()
        )
    variants = rated["variant"].str.split("@").str[0]
    assert {k: v["ratings"] for k, v in found["by_variant"].items()} == variants.value_counts().to_dict()
    ordered = rated.sort_values("seq")["rating"].to_numpy()
    assert [b["mean"] for b in found["trend"]] == pytest.approx(
        [ordered[i : i + 10].mean() for i in range(0, len(ordered), 10)]
    )
    assert found["trend"][0]["std"] == pytest.approx(ordered[:10].std(ddof=1))
    signals = feedback["signal"].value_counts().to_dict()
    assert found["signals"]["counts"] == signals and sum(signals.values()) > 20
    changed = found["signals"]["by_changed_parameter"]
    assert sum(r["n"] for r in changed.values()) <= sum(signals.values()) and set(changed) <= set(
        SPEC.search_space().free
    )


def test_status_prints_a_summary(url: str) -> None:
    text = run("status", "genai", "--store", url)
    assert text.startswith("genai: 16 users,") and "convergence" in text and "provider=" in text
    assert "rater agreement (Krippendorff's alpha): " in text


def rated_by(tmp_path: Path, rate: Callable[[dict[str, Any], np.random.Generator], int]) -> dict[str, Any]:
    """The rater agreement of 12 users rating 10 suggestions each with `rate`."""
    tmp_path.mkdir()
    engine = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"))
    engine.register(SPEC)
    rng = np.random.default_rng(0)
    for _ in range(10):
        for user in range(12):
            s = engine.suggest("genai", f"user-{user}", "portrait")
            engine.feedback(s.suggestion_id, Feedback(rating=rate(s.params, rng)), learn=False)
    agreement: dict[str, Any] = json.loads(run("status", "genai", "--json", "--store", engine.store.url))[
        "rater_agreement"
    ]
    return agreement


def test_rater_agreement_is_high_for_a_shared_taste_and_near_zero_for_random_ratings(tmp_path: Path) -> None:
    def shared(params: dict[str, Any], rng: np.random.Generator) -> int:
        taste = (params["guidance_scale"] - 5) / 7 + (params["provider"] == "leonardo")
        return int(np.clip(round(1 + 2 * taste + rng.normal(0, 0.3)), 1, 5))

    def random(params: dict[str, Any], rng: np.random.Generator) -> int:
        return int(rng.integers(1, 6))

    alike = rated_by(tmp_path / "shared", shared)
    noise = rated_by(tmp_path / "random", random)
    assert alike["raters"] == noise["raters"] == 12
    assert min(alike["shared_units"], noise["shared_units"]) >= 10
    assert alike["alpha"] > 0.6  # measured 0.78-0.87 over 3 seeds
    assert abs(noise["alpha"]) < 0.3  # measured -0.02-0.11


def test_rater_agreement_says_why_it_has_no_value(tmp_path: Path) -> None:
    engine = OnlineEngine(EventStore(f"sqlite:///{tmp_path / 'store.db'}"))
    engine.register(SPEC)
    s = engine.suggest("genai", "alone", "portrait")
    engine.feedback(s.suggestion_id, Feedback(rating=4))
    found = json.loads(run("status", "genai", "--json", "--store", engine.store.url))["rater_agreement"]
    assert found["alpha"] is None and "2 users" in found["note"]
