"""Objectives: real metrics move the way the underlying tools say they should."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pytest
import skimage.data
from PIL import Image as PILImage

from objectives import (
    DTLZ2,
    DTLZ4,
    WFG2,
    ZDT1,
    ZDT2,
    ZDT3,
    Codec,
    Trivial,
    Vectorize,
    image_features,
    load_images,
)
from objectives.codec import FORMATS
from objectives.images import DEFAULT_IMAGES

SKIMAGE_DATA = os.path.dirname(skimage.data.__file__)
FINE = {"color_precision": 8, "filter_speckle": 0, "layer_difference": 1}
COARSE = {"color_precision": 1, "filter_speckle": 16, "layer_difference": 64}


def sample(name: str) -> str:
    return os.path.join(SKIMAGE_DATA, name)


def mid_params(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One legal value per space entry (midpoints, first choice, fixed value)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "float":
            params[name] = (spec["low"] + spec["high"]) / 2
        elif kind == "int":
            params[name] = (spec["low"] + spec["high"]) // 2
        elif kind == "categorical":
            params[name] = spec["choices"][0]
        else:
            params[name] = spec["value"]
    return params


@pytest.fixture(scope="module")
def vec64() -> Vectorize:
    return Vectorize(max_side=64)


@pytest.fixture(scope="module")
def codec_small() -> Codec:
    return Codec(images=[sample("astronaut.png"), sample("logo.png")], max_side=64)


# ---------------------------------------------------------------- images


def test_default_images_are_bundled_rgb_and_downscaled() -> None:
    images = load_images(None, 64)
    assert [img.name for img in images] == sorted(os.path.splitext(n)[0] for n in DEFAULT_IMAGES)
    for img in images:
        assert img.pixels.dtype == np.uint8
        assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3
        assert max(img.pixels.shape[:2]) <= 64
        with PILImage.open(io.BytesIO(img.png)) as decoded:
            assert np.array_equal(np.asarray(decoded.convert("RGB")), img.pixels)


def test_transparency_is_composited_on_white(tmp_path: Any) -> None:
    path = tmp_path / "clear.png"
    PILImage.new("RGBA", (40, 20), (255, 0, 0, 0)).save(path)
    (img,) = load_images(str(path), 32)
    assert img.pixels.shape == (16, 32, 3)
    assert (img.pixels == 255).all()


def test_glob_and_list_sources_are_sorted_and_deduplicated(tmp_path: Any) -> None:
    for name in ("b.png", "a.png"):
        PILImage.new("RGB", (8, 8), (0, 128, 255)).save(tmp_path / name)
    images = load_images([str(tmp_path / "*.png"), str(tmp_path / "a.png")], 16)
    assert [img.name for img in images] == ["a", "b"]


def test_unreadable_file_names_the_path(tmp_path: Any) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        load_images(str(bad), 64)


def test_missing_file_and_empty_glob_raise(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_images(str(tmp_path / "nope.png"), 64)
    with pytest.raises(ValueError, match="matches no files"):
        load_images(str(tmp_path / "*.jpg"), 64)


def test_features_separate_logos_line_art_and_photos() -> None:
    images = {img.name: image_features(img.pixels) for img in load_images(None, 128)}
    photo, logo, horse = images["astronaut"], images["logo"], images["horse"]
    assert set(photo) == {"colors", "edge_density", "entropy", "width", "height"}
    assert logo["colors"] * 4 < photo["colors"]
    assert horse["entropy"] + 3 < photo["entropy"]
    assert horse["edge_density"] < photo["edge_density"]
    assert (images["text"]["width"], images["text"]["height"]) == (128.0, 49.0)


# ---------------------------------------------------------------- vectorize


def test_vectorize_defaults(vec64: Vectorize) -> None:
    result = vec64.evaluate({})
    assert set(result) == set(Vectorize.metrics)
    assert 0 < result["quality"] <= 1
    assert result["speed"] > 0
    assert result["cost"] > 0


def test_vectorize_fidelity_costs_bytes(vec64: Vectorize) -> None:
    fine, coarse = vec64.evaluate(FINE), vec64.evaluate(COARSE)
    assert fine["quality"] > coarse["quality"] + 0.2
    assert fine["cost"] > 10 * coarse["cost"]


def test_vectorize_binary_loses_colour(vec64: Vectorize) -> None:
    index = [img.name for img in vec64.images].index("coffee")
    color = vec64.evaluate_image({"colormode": "color"}, index)
    binary = vec64.evaluate_image({"colormode": "binary"}, index)
    assert binary["quality"] < color["quality"] - 0.2


def test_vectorize_space_corners_run() -> None:
    vec = Vectorize(images=sample("chelsea.png"), max_side=32)
    for pick in (0, -1):
        params: dict[str, Any] = {}
        for name, spec in Vectorize.space.items():
            if spec["type"] == "categorical":
                params[name] = spec["choices"][pick]
            else:
                params[name] = spec["low"] if pick == 0 else spec["high"]
        assert 0 < vec.evaluate(params)["quality"] <= 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"color_precision": 0}, "color_precision"),  # would panic inside vtracer
        ({"max_iterations": 0}, "max_iterations"),  # would panic inside vtracer
        ({"mode": "bezier"}, "mode"),  # vtracer would silently use its default
        ({"filter_speckle": -1}, "filter_speckle"),
        ({"colour_precision": 4}, "unknown vtracer parameter"),
    ],
)
def test_vectorize_rejects_bad_params(vec64: Vectorize, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vec64.evaluate_image(params, 0)


def test_vectorize_rounds_float_ints(vec64: Vectorize) -> None:
    as_float = vec64.evaluate_image({"filter_speckle": 3.8, "path_precision": 2.0}, 0)
    as_int = vec64.evaluate_image({"filter_speckle": 4, "path_precision": 2}, 0)
    assert (as_float["quality"], as_float["cost"]) == (as_int["quality"], as_int["cost"])


def test_vectorize_features(vec64: Vectorize) -> None:
    rows = vec64.features()
    assert [row["name"] for row in rows] == [img.name for img in vec64.images]
    assert all(row["width"] <= 64 and row["colors"] >= 1 for row in rows)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"max_side": 8}, "max_side=8"), ({"max_side": "big"}, "max_side"), ({"dpi": 3}, "dpi")],
)
def test_image_objectives_validate_options(options: dict[str, Any], match: str) -> None:
    for cls in (Vectorize, Codec):
        with pytest.raises(ValueError, match=match):
            cls(**options)


# ---------------------------------------------------------------- codec


@pytest.mark.parametrize("fmt", FORMATS)
def test_codec_quality_knob(codec_small: Codec, fmt: str) -> None:
    low = codec_small.evaluate({"format": fmt, "quality": 10})
    high = codec_small.evaluate({"format": fmt, "quality": 95})
    assert high["quality"] > low["quality"] + 0.1
    assert high["cost"] > 1.5 * low["cost"]
    assert 0 < low["quality"] < high["quality"] <= 1
    assert low["speed"] > 0


def test_codec_jpeg_subsampling_changes_output(codec_small: Codec) -> None:
    full = codec_small.evaluate({"format": "jpeg", "quality": 90, "subsampling": 0})
    half = codec_small.evaluate({"format": "jpeg", "quality": 90, "subsampling": 2})
    assert full["cost"] > half["cost"]


def test_codec_rejects_unknown_format(codec_small: Codec) -> None:
    with pytest.raises(ValueError, match="format='gif'"):
        codec_small.evaluate({"format": "gif"})


# ---------------------------------------------------------------- synthetic


def test_zdt1_matches_pymoo_front() -> None:
    problem = ZDT1()
    front = problem.true_front(50)
    assert front.shape == (50, 2)
    for f1, f2 in front[::7]:
        got = problem.evaluate({"x0": f1, "x1": 0.0, "x2": 0.0, "x3": 0.0, "x4": 0.0, "x5": 0.0})
        assert got["f1"] == pytest.approx(f1)
        assert got["f2"] == pytest.approx(f2)
        assert got["f2"] == pytest.approx(1 - np.sqrt(f1))


def zdt(x: np.ndarray, h: Any) -> tuple[float, float]:
    """Zitzler, Deb and Thiele (2000): f1 = x1, g = 1 + 9 mean(x2..xn), f2 = g h(f1, g)."""
    f1, g = x[0], 1 + 9 * x[1:].sum() / (len(x) - 1)
    return f1, g * h(f1, g)


def dtlz2(x: np.ndarray) -> tuple[float, float, float]:
    """Deb, Thiele, Laumanns and Zitzler (2002), three objectives: a sphere scaled by 1 + g."""
    g = ((x[2:] - 0.5) ** 2).sum()
    a, b = x[0] * np.pi / 2, x[1] * np.pi / 2
    return (1 + g) * np.cos(a) * np.cos(b), (1 + g) * np.cos(a) * np.sin(b), (1 + g) * np.sin(a)


def dtlz4(x: np.ndarray) -> tuple[float, float, float]:
    """DTLZ2 with each position variable raised to the power 100 (the same paper)."""
    return dtlz2(np.concatenate([x[:2] ** 100, x[2:]]))


@pytest.mark.parametrize(
    ("cls", "formula"),
    [
        (ZDT1, lambda x: zdt(x, lambda f, g: 1 - np.sqrt(f / g))),
        (ZDT2, lambda x: zdt(x, lambda f, g: 1 - (f / g) ** 2)),
        (ZDT3, lambda x: zdt(x, lambda f, g: 1 - np.sqrt(f / g) - f / g * np.sin(10 * np.pi * f))),
        (DTLZ2, dtlz2),
        (DTLZ4, dtlz4),
    ],
)
def test_synthetic_problems_follow_their_published_formulas(cls: Any, formula: Any) -> None:
    problem, rng = cls(), np.random.default_rng(0)
    names = list(problem.space)
    for _ in range(20):
        x = rng.uniform(size=len(names))
        got = problem.evaluate(dict(zip(names, x, strict=True)))
        assert [got[f"f{i + 1}"] for i in range(len(got))] == pytest.approx(formula(x), rel=1e-12, abs=1e-12)


def test_fronts_have_known_shapes() -> None:
    f = ZDT2().true_front(100)
    assert np.allclose(f[:, 1], 1 - f[:, 0] ** 2)
    f3 = ZDT3().true_front(200)
    assert f3.shape == (200, 2) and f3[:, 1].min() < -0.7
    sphere = DTLZ2().true_front(200)
    assert sphere.shape == (190, 3)
    assert np.allclose((sphere**2).sum(axis=1), 1.0)
    assert ZDT1().true_front(20).shape == (20, 2)  # not pymoo's cached first answer


def test_wfg2_reads_its_variables_from_the_unit_cube() -> None:
    """WFG2's variable i lies in [0, 2i]: 0.5 in the unit cube is i there."""
    problem = WFG2()
    got = problem.evaluate({f"x{i}": 0.5 for i in range(6)})
    want = problem.problem.evaluate(np.arange(1, 7, dtype=float)[None, :], return_values_of=["F"])[0]
    assert [got["f1"], got["f2"], got["f3"]] == pytest.approx(list(want))
    assert WFG2().true_front(200).max(axis=0) == pytest.approx([2.0, 4.0, 6.0])


@pytest.mark.parametrize("cls", [ZDT1, ZDT2, ZDT3, DTLZ2, DTLZ4, WFG2, Trivial])
def test_reference_point_is_dominated_by_front(cls: Any) -> None:
    front = cls().true_front()
    assert len(cls.reference_point) == len(cls.metrics)
    assert (front < np.asarray(cls.reference_point)).all()


def test_synthetic_rejects_out_of_range_and_options() -> None:
    with pytest.raises(ValueError, match="x3"):
        ZDT1().evaluate({"x3": 1.5})
    with pytest.raises(ValueError, match="n_var"):
        DTLZ2(n_var=12)
    assert Trivial().evaluate({"x": 0.25}) == {"f1": 0.25, "f2": 0.5625}


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("cls", [Vectorize, Codec, ZDT1, ZDT2, ZDT3, DTLZ2, DTLZ4, WFG2, Trivial])
def test_contract(cls: Any) -> None:
    for name, (direction, unit) in cls.metrics.items():
        assert isinstance(name, str) and direction in ("min", "max") and isinstance(unit, str)
    for spec in cls.space.values():
        assert spec["type"] in ("float", "int", "categorical", "fixed")
        if spec["type"] in ("float", "int"):
            assert spec["low"] < spec["high"]
    options = {"images": sample("chelsea.png"), "max_side": 32} if cls in (Vectorize, Codec) else {}
    objective = cls(**options)
    for params in (mid_params(cls.space), {}):
        result = objective.evaluate(params)
        assert set(result) == set(cls.metrics)
        assert all(isinstance(v, float) and np.isfinite(v) for v in result.values())
