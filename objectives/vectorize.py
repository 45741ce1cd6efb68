"""Raster-to-vector tracing with vtracer: fidelity vs. tracing time vs. SVG size.

Each evaluation traces every loaded image, renders the SVG back with resvg at the original
size on white, and scores the rendering against the pixels with SSIM.
"""

from __future__ import annotations

import io
import time
from typing import Any, ClassVar

import numpy as np
import resvg_py
import vtracer
from PIL import Image as PILImage

from objectives.images import ImageObjective, ssim

# vtracer's own defaults, used for any parameter a trial does not set.
DEFAULTS: dict[str, Any] = {
    "colormode": "color",
    "hierarchical": "stacked",
    "mode": "spline",
    "filter_speckle": 4,
    "color_precision": 6,
    "layer_difference": 16,
    "corner_threshold": 60,
    "length_threshold": 4.0,
    "max_iterations": 10,
    "splice_threshold": 45,
    "path_precision": 8,
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "colormode": ("color", "binary"),
    "hierarchical": ("stacked", "cutout"),
    "mode": ("spline", "polygon", "none"),
}

# Hard limits checked before calling vtracer: it silently falls back to its default for an
# unknown mode string, rejects negative ints with OverflowError, and panics (a pyo3
# PanicException, which is a BaseException, with a Rust backtrace) for color_precision < 1
# and max_iterations < 1. color_precision counts bits per channel, so > 8 is meaningless.
_INT_LIMITS: dict[str, tuple[int, int | None]] = {
    "filter_speckle": (0, None),
    "color_precision": (1, 8),
    "layer_difference": (0, None),
    "corner_threshold": (0, 180),
    "max_iterations": (1, None),
    "splice_threshold": (0, 180),
    "path_precision": (0, None),
}


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"parameter {name}={value!r} must be a number")
    if not np.isfinite(value):
        raise ValueError(f"parameter {name}={value!r} must be finite")
    number = round(float(value))
    low, high = _INT_LIMITS[name]
    if number < low or (high is not None and number > high):
        upper = "" if high is None else f" and at most {high}"
        raise ValueError(f"parameter {name}={value!r} must be at least {low}{upper}")
    return number


def vtracer_params(params: dict[str, Any]) -> dict[str, Any]:
    """Merge `params` over vtracer's defaults and coerce them to the types vtracer needs.

    Integer parameters accept floats (searchers that relax to continuous values) and are
    rounded; out-of-domain values raise ValueError instead of crashing vtracer.
    """
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown vtracer parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    out: dict[str, Any] = {}
    for name, value in merged.items():
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ValueError(f"parameter {name}={value!r} must be one of {_CHOICES[name]}")
            out[name] = str(value)
        elif name == "length_threshold":
            number = float(value)
            if not np.isfinite(number) or number < 0:
                raise ValueError(f"parameter {name}={value!r} must be a finite number >= 0")
            out[name] = number
        else:
            out[name] = _as_int(name, value)
    return out


class Vectorize(ImageObjective):
    """vtracer PNG->SVG: SSIM of the re-rendered SVG, tracing ms and SVG bytes per image."""

    # online contexts: the image's features (objectives.images.image_features)
    context_features: ClassVar[int] = 5

    metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "quality": ("max", "ssim"),
        "speed": ("min", "ms"),
        "cost": ("min", "bytes"),
    }
    # Every extreme combination of these ranges was traced on the bundled samples without
    # error (vtracer 0.6.15); see vtracer_params for the values that do crash it.
    default_max_side: ClassVar[int] = 256
    space: ClassVar[dict[str, dict[str, Any]]] = {
        "colormode": {"type": "categorical", "choices": ["color", "binary"]},
        "hierarchical": {"type": "categorical", "choices": ["stacked", "cutout"]},
        "mode": {"type": "categorical", "choices": ["spline", "polygon", "none"]},
        "filter_speckle": {"type": "int", "low": 0, "high": 16},
        "color_precision": {"type": "int", "low": 1, "high": 8},
        "layer_difference": {"type": "int", "low": 1, "high": 64, "log": True},
        "corner_threshold": {"type": "int", "low": 0, "high": 180},
        "length_threshold": {"type": "float", "low": 3.5, "high": 10.0, "log": False},
        "max_iterations": {"type": "int", "low": 1, "high": 20},
        "splice_threshold": {"type": "int", "low": 0, "high": 180},
        "path_precision": {"type": "int", "low": 1, "high": 8},
    }

    def trace(self, params: dict[str, Any], index: int) -> tuple[str, float]:
        """Vectorise one image; returns the SVG and the vtracer wall time in ms."""
        options = vtracer_params(params)
        image = self.images[index]
        start = time.perf_counter()
        try:
            svg = vtracer.convert_raw_image_to_svg(image.png, img_format="png", **options)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # pyo3 panics derive from BaseException
            raise ValueError(f"vtracer failed on {image.name!r} with {options}: {exc}") from exc
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if not svg or "<svg" not in svg:
            raise ValueError(f"vtracer returned no SVG for {image.name!r} with {options}")
        return svg, elapsed_ms

    def render(self, svg: str, index: int) -> np.ndarray:
        """Rasterise `svg` at the size of image `index`, on white, as uint8 RGB."""
        height, width = self.images[index].pixels.shape[:2]
        try:
            png = bytes(
                resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, background="#ffffff")
            )
            with PILImage.open(io.BytesIO(png)) as rendered:
                rgb = rendered.convert("RGB")
        except Exception as exc:
            name = self.images[index].name
            raise ValueError(f"cannot render the SVG traced from {name!r}: {exc}") from exc
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), PILImage.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)

    def evaluate_image(self, params: dict[str, Any], index: int) -> dict[str, float]:
        """Metrics for a single image (index into `self.images`)."""
        svg, elapsed_ms = self.trace(params, index)
        rendered = self.render(svg, index)
        return {
            "quality": ssim(self.images[index].pixels, rendered),
            "speed": elapsed_ms,
            "cost": float(len(svg.encode("utf-8"))),
        }
