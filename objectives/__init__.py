"""Problems to optimise: each a class with a parameter space, metrics and ``evaluate``."""

from objectives.codec import Codec
from objectives.images import Image, image_features, load_images, pattern_features
from objectives.synthetic import DTLZ2, DTLZ4, WFG2, ZDT1, ZDT2, ZDT3, Trivial
from objectives.vectorize import Vectorize

__all__ = [
    "DTLZ2",
    "DTLZ4",
    "WFG2",
    "ZDT1",
    "ZDT2",
    "ZDT3",
    "Codec",
    "Image",
    "Trivial",
    "Vectorize",
    "image_features",
    "load_images",
    "pattern_features",
]
