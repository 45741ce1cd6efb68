"""Pattern analysis (vectorize): images grouped by what they look like, explored per pattern,
rules whose gains over the global setting re-measure exactly from the rules file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from engine.offline import run_local
from engine.offline.patterns import GAIN_WORTH, analyse_patterns, assign_pattern, find_patterns
from engine.spec import parse_spec
from objectives.vectorize import Vectorize

Rules = tuple[dict[str, Any], Path]


def synthetic_images(root: Path) -> dict[str, list[str]]:
    """Three each of flat two-colour shapes, smooth colour gradients, noisy photos-like
    textures and black strokes on white (text), with their kind."""
    rng = np.random.default_rng(0)
    kinds: dict[str, list[str]] = {"flat": [], "gradient": [], "noise": [], "text": []}
    for i in range(3):
        flat = Image.new("RGB", (96, 96), (255, 255, 255))
        ImageDraw.Draw(flat).ellipse((10 + 5 * i, 10, 80, 70 + 5 * i), fill=(200, 30 * i, 40))
        ramp = np.linspace(0, 1, 96)
        gradient = np.stack([np.outer(ramp, np.ones(96)) * (200 - 40 * i), np.outer(np.ones(96), ramp) * 255,
                             np.full((96, 96), 60.0 * i)], axis=-1)  # fmt: skip
        noise = rng.integers(0, 256, (96, 96, 3))
        text = Image.new("RGB", (96, 96), (255, 255, 255))
        draw = ImageDraw.Draw(text)
        for line in range(6):
            draw.text((4, 4 + 15 * line), f"lorem ipsum {i}{line}", fill=(0, 0, 0))
        for kind, image in (("flat", flat), ("gradient", Image.fromarray(gradient.astype(np.uint8))),
                            ("noise", Image.fromarray(noise.astype(np.uint8))), ("text", text)):  # fmt: skip
            path = root / f"{kind}-{i}.png"
            image.save(path)
            kinds[kind].append(str(path))
    return kinds


def test_images_of_four_kinds_fall_into_four_patterns(tmp_path: Path) -> None:
    kinds = synthetic_images(tmp_path)
    paths = sorted(p for group in kinds.values() for p in group)
    features = Vectorize(images=paths, max_side=96).pattern_features()
    patterns = find_patterns(features, max_patterns=4)
    found = sorted(sorted(paths[i] for i in p.images) for p in patterns)
    assert found == sorted(sorted(group) for group in kinds.values())
    names = {Path(paths[p.images[0]]).name.split("-")[0]: p.name for p in patterns}
    assert names["flat"] == "flat colour and logos" and names["gradient"] == "gradients"
    assert names["text"] == "text and greyscale" and names["noise"] == "photos"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    """The bundled images at 64 px, small budgets, one process; without the speed metric,
    which is measured (so searches would differ between runs), the run is deterministic."""
    data = yaml.safe_load(Path("configs/vectorize.yaml").read_text())
    data["objective"]["options"] = {"max_side": 64}
    data["metrics"] = [m for m in data["metrics"] if m["name"] != "speed"]
    data["preference"] = {"quality": 0.6, "cost": 0.4}
    out = tmp_path_factory.mktemp("patterns")
    found = analyse_patterns(parse_spec(data), out, runner=run_local, global_trials=12, trials_per_pattern=8)
    return found, out


def test_the_rules_file_holds_every_image_once_and_its_gains_re_measure(
    rules: tuple[dict[str, Any], Path],
) -> None:
    found, out = rules
    assert json.loads((out / "rules.json").read_text()) == found
    objective = Vectorize(max_side=64)
    names = [image.name for image in objective.images]
    assert sorted(n for p in found["patterns"] for n in p["images"]) == sorted(names)
    space = parse_spec(yaml.safe_load(Path("configs/vectorize.yaml").read_text())).search_space()
    assert space.contains(found["global"]["params"])
    features = {f["name"]: f for f in objective.pattern_features()}
    for pattern in found["patterns"]:
        assert 0.0 <= pattern["confidence"] <= 1.0
        for name in pattern["images"]:  # a new image like it is assigned to it
            assert assign_pattern(found, features[name]) == pattern["name"]
        if pattern["rule"] is None:
            assert pattern["note"] and pattern["confidence"] == 0.0
            continue
        assert space.contains(pattern["rule"]) and pattern["gain"]["value"] == max(pattern["gains"].values())
        indices = [names.index(n) for n in pattern["images"]]
        rule = [objective.evaluate_image(pattern["rule"], i) for i in indices]
        base = [objective.evaluate_image(found["global"]["params"], i) for i in indices]
        q_rule, q_base = np.mean([r["quality"] for r in rule]), np.mean([r["quality"] for r in base])
        c_rule, c_base = np.mean([r["cost"] for r in rule]), np.mean([r["cost"] for r in base])
        assert (q_base, c_base) == pytest.approx((pattern["global"]["quality"], pattern["global"]["cost"]))
        if pattern["gain"]["kind"] == "quality at equal cost":
            assert c_rule <= c_base and pattern["gain"]["value"] == pytest.approx(q_rule / q_base - 1)
        else:
            assert q_rule >= q_base and pattern["gain"]["value"] == pytest.approx(1 - c_rule / c_base)
        wins = sum(
            (r["quality"] > b["quality"])
            if pattern["gain"]["kind"].startswith("quality")
            else (r["cost"] < b["cost"])
            for r, b in zip(rule, base, strict=True)
        )
        assert pattern["confidence"] == wins / len(indices)
    assert any(p["rule"] is not None for p in found["patterns"])  # something was re-measured
    worth = [p for p in found["patterns"] if p["rule"] is not None and p["gain"]["value"] >= GAIN_WORTH]
    assert found["verdict"].startswith("No pattern gains") == (not worth)
    assert found["verdict"] in (out / "patterns.md").read_text()
