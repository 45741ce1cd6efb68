"""Specs and the CLI: bad input gets a message naming the field, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.spec import SpecError, load_spec

# serve.yaml is in Ray Serve's own format (tests/unit/test_client_and_app_args.py checks it)
CONFIGS = sorted(p for p in Path("configs").glob("*.yaml") if p.name != "serve.yaml")


def write(tmp_path: Path, data: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def base() -> dict:
    return yaml.safe_load(Path("configs/zdt1.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_bundled_configs_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(colour="red"), ["colour", "unknown field"]),
        (lambda d: d["searcher"].update(name="annealing"), ["searcher.name", "annealing", "choose one of"]),
        (lambda d: d["budget"].update(trials=0), ["budget.trials", "greater than 0"]),
        (lambda d: d.update(budget={}), ["budget", "trials"]),
        (lambda d: d["metrics"][0].update(direction="up"), ["metrics.0.direction", "'up'"]),
        (lambda d: d["metrics"][0].update(constraint="f1 ~ 3"), ["constraint", "quality >= 0.9"]),
        (lambda d: d["metrics"][0].update(constraint="f2 <= 3"), ["names 'f2'", "'f1'"]),
        (lambda d: d["metrics"][0].pop("reference"), ["metrics.0.reference", "missing"]),
        (lambda d: d["metrics"].append({"name": "f1", "direction": "min", "reference": 1}), ["repeat"]),
        (
            lambda d: d["metrics"].append({"name": "f9", "direction": "min", "reference": 1}),
            ["f9", "not produced"],
        ),
        (lambda d: d.update(preference={"speed": 1.0}), ["speed", "not metrics"]),
        (lambda d: d.update(space={"x0": {"type": "float", "low": 1, "high": 0}}), ["space.x0", "low=1.0"]),
        (lambda d: d.update(space={"x0": {"type": "float", "low": 0, "high": 1, "log": True}}), ["log"]),
        (lambda d: d.update(space={"x0": {"type": "normal"}}), ["space.x0", "normal"]),
        (lambda d: d["objective"].update(ref="objectives.nothing:Here"), ["cannot import"]),
        (lambda d: d["objective"].update(ref="objectives.synthetic:Nope"), ["has no 'Nope'"]),
        (lambda d: d.update(concurrency=0), ["concurrency"]),
    ],
)
def test_bad_specs_name_field_value_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, expected: list[str]
) -> None:
    data = base()
    edit(data)  # type: ignore[operator]
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    for fragment in expected:
        assert fragment in str(err.value)
    assert main(["validate", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_without_preference_every_metric_weighs_the_same(tmp_path: Path) -> None:
    data = base()
    del data["preference"]  # zdt1's metrics are f1 and f2, not quality/speed/cost
    spec = load_spec(write(tmp_path, data))
    assert spec.weights() == {"f1": 0.5, "f2": 0.5}
    with pytest.raises(SpecError, match="not all 0"):
        load_spec(write(tmp_path, {**data, "preference": {"f1": 0.0}}))


def test_unreadable_yaml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write(tmp_path, "name: [unclosed"))]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_unreadable_image_fails_before_any_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = yaml.safe_load(Path("configs/vectorize.yaml").read_text())
    data["objective"]["options"]["images"] = str(tmp_path / "*.png")
    path = write(tmp_path, data)
    out = tmp_path / "out"
    assert main(["explore", str(path), "--out", str(out), "--backend", "local"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err
    assert not (out / "events.jsonl").exists()


def test_explore_then_front_then_resume_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = base()
    data["budget"] = {"trials": 12}
    path = write(tmp_path, data)
    out = tmp_path / "out"
    assert main(["explore", str(path), "--out", str(out), "--backend", "local", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "12 trials" in printed and str(out.resolve() / "front.parquet") in printed
    assert main(["front", str(out)]) == 0
    assert "hypervolume" in capsys.readouterr().out
    assert main(["explore", str(path), "--out", str(out), "--backend", "local"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["front", str(tmp_path / "nothing")]) == 2
