"""Lossy image codecs through Pillow: decoded fidelity vs. encode time vs. bytes.

A second real problem whose trade-offs are well understood (JPEG/WebP/AVIF quality knobs),
useful for checking that the fronts Frontier finds look like the known ones.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import features as pil_features

from objectives.images import ImageObjective, ssim

# AVIF support depends on how Pillow was built, so the choices are decided at import time.
FORMATS: tuple[str, ...] = ("jpeg", "webp", *(("avif",) if pil_features.check("avif") else ()))

DEFAULTS: dict[str, Any] = {"format": "jpeg", "quality": 75, "subsampling": 2, "method": 4}


def _int_param(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"parameter {name}={value!r} must be a number")
    if not np.isfinite(value) or not low <= round(float(value)) <= high:
        raise ValueError(f"parameter {name}={value!r} must be between {low} and {high}")
    return round(float(value))


def encoder_options(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Merge `params` over the defaults; return the Pillow format name and save() kwargs.

    `subsampling` only applies to JPEG and `method` only to WebP; each is ignored otherwise.
    """
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown codec parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    fmt = merged["format"]
    if fmt not in FORMATS:
        raise ValueError(f"parameter format={fmt!r} must be one of {FORMATS} on this machine")
    kwargs: dict[str, Any] = {"quality": _int_param("quality", merged["quality"], 0, 100)}
    if fmt == "jpeg":
        kwargs["subsampling"] = _int_param("subsampling", merged["subsampling"], 0, 2)
    elif fmt == "webp":
        kwargs["method"] = _int_param("method", merged["method"], 0, 6)
    return fmt.upper(), kwargs


class Codec(ImageObjective):
    """Pillow lossy encoders: SSIM of the decoded image, encode ms and bytes per image."""

    metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "quality": ("max", "ssim"),
        "speed": ("min", "ms"),
        "cost": ("min", "bytes"),
    }
    default_max_side: ClassVar[int] = 256
    space: ClassVar[dict[str, dict[str, Any]]] = {
        "format": {"type": "categorical", "choices": list(FORMATS)},
        "quality": {"type": "int", "low": 5, "high": 100},
        "subsampling": {"type": "categorical", "choices": [0, 1, 2]},
        "method": {"type": "int", "low": 0, "high": 6},
    }

    def __init__(
        self, images: str | Sequence[str] | None = None, max_side: int | None = None, **unknown: Any
    ) -> None:
        super().__init__(images, max_side, **unknown)
        self._pil = [PILImage.fromarray(np.asarray(img.pixels)) for img in self.images]

    def evaluate_image(self, params: dict[str, Any], index: int) -> dict[str, float]:
        """Metrics for a single image (index into `self.images`)."""
        fmt, kwargs = encoder_options(params)
        buffer = io.BytesIO()
        start = time.perf_counter()
        self._pil[index].save(buffer, format=fmt, **kwargs)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        data = buffer.getvalue()
        with PILImage.open(io.BytesIO(data)) as decoded:
            pixels = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        return {
            "quality": ssim(self.images[index].pixels, pixels),
            "speed": elapsed_ms,
            "cost": float(len(data)),
        }
