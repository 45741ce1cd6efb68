"""Image loading and cheap per-image features shared by the image objectives.

Images are downscaled once at load time so every trial works on the same small pixels, and
each keeps a PNG encoding of those pixels because vtracer wants encoded bytes, not arrays.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

# Visually diverse samples that ship inside the scikit-image wheel (no network needed):
# photos, a grey photo, a logo, a silhouette, text, a scanned page, a texture, a colour chart.
DEFAULT_IMAGES: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "color.png",
    "horse.png",
    "logo.png",
    "page.png",
    "rocket.jpg",
    "text.png",
)

_HINT = "give a PNG/JPEG path or glob, or omit `images` to use the bundled samples"


@dataclass(frozen=True)
class Image:
    """One downscaled RGB image: `pixels` for comparison, `png` as encoder input."""

    name: str
    pixels: np.ndarray  # uint8, H x W x 3
    png: bytes


def _skimage_data_dir() -> str:
    import skimage.data

    return os.path.dirname(skimage.data.__file__)


def _expand(source: str | Sequence[str] | None) -> list[str]:
    if source is None:
        root = _skimage_data_dir()
        return [os.path.join(root, name) for name in DEFAULT_IMAGES]
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not items:
        raise ValueError(f"images=[] is empty; {_HINT}")
    paths: list[str] = []
    for item in items:
        item = os.fspath(item)
        if glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise ValueError(f"image glob {item!r} matches no files; {_HINT}")
            paths.extend(matches)
        elif not os.path.isfile(item):
            raise ValueError(f"image file {item!r} does not exist; {_HINT}")
        else:
            paths.append(item)
    # Deduplicate while keeping a sorted, deterministic order.
    return sorted(dict.fromkeys(paths))


def _to_rgb(img: PILImage.Image) -> PILImage.Image:
    """Convert any mode to RGB, compositing transparency onto white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _load_one(path: str, max_side: int) -> Image:
    try:
        with PILImage.open(path) as raw:
            raw.load()
            img = _to_rgb(raw)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}; {_HINT}") from exc
    img.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pixels = np.asarray(img, dtype=np.uint8).copy()
    pixels.setflags(write=False)
    name = os.path.splitext(os.path.basename(path))[0]
    return Image(name=name, pixels=pixels, png=buf.getvalue())


def load_images(source: str | Sequence[str] | None, max_side: int) -> list[Image]:
    """Load images from a path, a glob, a list of either, or the bundled samples (None).

    Each image is converted to RGB (alpha over white) and shrunk so its longest side is at
    most `max_side`. Raises ValueError naming the offending path for anything unreadable.
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side={max_side!r} is invalid; give a positive integer")
    return [_load_one(path, max_side) for path in _expand(source)]


def image_features(pixels: np.ndarray) -> dict[str, float]:
    """Cheap descriptors that separate logos/line art from photos and textures.

    colors: distinct colours after 5-bit quantisation; edge_density: fraction of pixels on
    a Canny edge; entropy: Shannon entropy (bits) of the grey histogram; width, height.
    """
    from skimage.feature import canny

    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"pixels of shape {arr.shape} are not an HxWx3 image")
    rgb = arr[..., :3].astype(np.uint8)
    height, width = rgb.shape[:2]

    q = (rgb >> 3).astype(np.uint32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    colors = int(np.unique(codes).size)

    grey = (rgb @ np.array([0.299, 0.587, 0.114])).astype(np.float64) / 255.0
    edges = canny(grey, sigma=1.0)
    edge_density = float(edges.mean()) if edges.size else 0.0

    hist = np.bincount(np.clip(np.rint(grey * 255), 0, 255).astype(np.int64).ravel(), minlength=256)
    p = hist[hist > 0] / hist.sum()
    entropy = float(-(p * np.log2(p)).sum())

    return {
        "colors": float(colors),
        "edge_density": edge_density,
        "entropy": entropy,
        "width": float(width),
        "height": float(height),
    }


def pattern_features(pixels: np.ndarray) -> dict[str, float]:
    """`image_features` plus what tells flat art, text, gradients and photos apart (for
    offline pattern analysis, engine.offline.patterns): flat, the share of pixels equal to
    their right and lower neighbours (grey level); smooth, the share that differ from them
    by 1-4 levels (gradients); dominant, the share of the two most frequent colours."""
    rgb = np.asarray(pixels)[..., :3].astype(np.uint8)
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    steps = np.maximum(np.abs(np.diff(grey, axis=1))[:-1, :], np.abs(np.diff(grey, axis=0))[:, :-1])
    q = (rgb >> 3).astype(np.uint32)
    _, counts = np.unique((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2], return_counts=True)
    return {
        **image_features(rgb),
        "flat": float((steps < 0.5).mean()) if steps.size else 1.0,
        "smooth": float(((steps >= 0.5) & (steps <= 4.0)).mean()) if steps.size else 0.0,
        "dominant": float(np.sort(counts)[::-1][:2].sum() / counts.sum()),
    }


def ssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean SSIM of two uint8 RGB images of the same shape (1.0 = identical).

    skimage's 7x7 window is shrunk for small images (and images under 3 px edge-padded),
    because skimage refuses a window larger than the image.
    """
    from skimage.metrics import structural_similarity

    if reference.shape != candidate.shape:
        raise ValueError(f"cannot compare images of shapes {reference.shape} and {candidate.shape}")
    a, b = reference, candidate
    height, width = a.shape[:2]
    if min(height, width) < 3:
        pad = ((0, max(0, 3 - height)), (0, max(0, 3 - width)), (0, 0))
        a, b = np.pad(a, pad, mode="edge"), np.pad(b, pad, mode="edge")
        height, width = a.shape[:2]
    win = min(7, height, width)
    if win % 2 == 0:
        win -= 1
    value = structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win)
    return float(value)


def check_max_side(value: object, low: int = 16, high: int = 2048) -> int:
    """Validate the `max_side` option shared by the image objectives."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not (low <= int(value) <= high):
        raise ValueError(
            f"option max_side={value!r} is invalid; give an integer between {low} and {high} "
            "(pixels of the longest side after downscaling)"
        )
    return int(value)


class ImageObjective:
    """What every objective over a set of images shares: loading, features, averaging.

    Subclasses set `metrics`, `space`, `default_max_side` and `evaluate_image`.
    """

    metrics: ClassVar[dict[str, tuple[str, str]]]
    default_max_side: ClassVar[int] = 128

    def __init__(
        self, images: str | Sequence[str] | None = None, max_side: int | None = None, **unknown: Any
    ) -> None:
        if unknown:
            name = type(self).__name__
            raise ValueError(f"unknown option(s) {sorted(unknown)} for {name}; known: images, max_side")
        self.max_side = check_max_side(self.default_max_side if max_side is None else max_side)
        self.paths = _expand(images)  # where each image came from: a subset is an `images` option
        self.images: list[Image] = [_load_one(path, self.max_side) for path in self.paths]

    def features(self) -> list[dict[str, Any]]:
        """Per-image descriptors (plus `name`) for clustering images into contexts."""
        return [{"name": img.name, **image_features(img.pixels)} for img in self.images]

    def pattern_features(self) -> list[dict[str, Any]]:
        """Per-image descriptors (plus `name`) for grouping images into patterns offline."""
        return [{"name": img.name, **pattern_features(img.pixels)} for img in self.images]

    def evaluate_image(self, params: dict[str, Any], index: int) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, params: dict[str, Any]) -> dict[str, float]:
        """Metrics averaged over all loaded images."""
        rows = [self.evaluate_image(params, i) for i in range(len(self.images))]
        return {name: float(np.mean([row[name] for row in rows])) for name in self.metrics}
