"""`frontier report`: the HTML page holds every plot (each a valid image) with its caption,
or the sentence that stands in for it; the PDF has a page per section with its text."""

from __future__ import annotations

import base64
import contextlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pypdf import PdfReader

from engine.cli import main as frontier
from engine.experiments import VariantSpec
from engine.offline.explore import explore, run_local
from engine.online import Feedback, OnlineEngine
from engine.report.figures import SECTIONS
from engine.spec import parse_spec
from engine.store import EventStore
from objectives.users import population

TITLES = [
    "Pareto front",
    "Hypervolume over trials, per searcher",
    "Parameter importance (fANOVA)",
    "Rating trend and convergence",
    "Variants compared",
    "Best settings per context",
    "Rater calibration",
]


class Page(HTMLParser):
    """Each section's title, images (data URIs), captions and stand-in sentences."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, list[str]]] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "h2":
            self.sections.append({"title": [], "img": [], "caption": [], "missing": []})
            self._in = "title"
        elif tag == "img" and self.sections:
            self.sections[-1]["img"].append(found.get("src") or "")
        elif tag == "figcaption":
            self._in = "caption"
        elif tag == "p" and found.get("class") == "missing":
            self._in = "missing"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "figcaption", "p"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and self.sections:
            self.sections[-1][self._in].append(data)


def report(url: str, out: Path) -> tuple[list[dict[str, list[str]]], PdfReader]:
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert frontier(["report", "genai", "--store", url, "--out", str(out)]) == 0
    assert text.getvalue().split() == [
        str((out / "report.html").resolve()),
        str((out / "report.pdf").resolve()),
    ]
    page = Page()
    page.feed((out / "report.html").read_text())
    return page.sections, PdfReader(out / "report.pdf")


def png(src: str) -> Image.Image:
    """The image a data URI holds; raises if it is not a whole PNG."""
    assert src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
    image.load()  # decodes every pixel: a truncated image fails here
    return image


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two exploration runs (TPE, random) and users rating two variants in two contexts."""
    root = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{root / 'store.db'}"
    data = yaml.safe_load(Path("configs/genai.yaml").read_text())
    for searcher in ("tpe", "random"):
        data.update(searcher={"name": searcher}, budget={"trials": 16})
        explore(parse_spec(data), root / searcher, runner=run_local, progress=False, store=url)
    engine = OnlineEngine(EventStore(url))
    engine.create_variant(
        "genai", VariantSpec(name="plain", control=True, payload={"template": "a {subject}"})
    )
    engine.create_variant("genai", VariantSpec(name="vivid", payload={"template": "a vivid {subject}"}))
    for _ in range(6):
        for i, person in enumerate(population(12, seed=5)):
            context = ("portrait", "landscape")[i % 2]
            s = engine.suggest("genai", person.user_id, context)
            engine.feedback(s.suggestion_id, Feedback(rating=person.rate(s.params, context)))
    return url


def test_every_plot_renders_with_its_caption(full: str, tmp_path: Path) -> None:
    sections, pdf = report(full, tmp_path)
    assert ["".join(s["title"]) for s in sections] == TITLES and len(SECTIONS) == len(TITLES)
    for section in sections:
        title = "".join(section["title"])
        assert len(section["img"]) == 1 and not section["missing"], title
        image = png(section["img"][0])
        assert image.width > 300 and image.height > 200, title
        assert np.asarray(image.convert("L")).std() > 5, title  # not a blank canvas
        assert len("".join(section["caption"])) > 80, title
    assert len(pdf.pages) == 1 + len(TITLES)
    first = pdf.pages[0].extract_text()
    assert (
        "Frontier report: genai" in first
        and "users: 12" in first
        and "exploration runs: 2, 32 trials" in first
    )
    for page, title in zip(pdf.pages[1:], TITLES, strict=True):
        text = re.sub(r"\s+", " ", page.extract_text())
        assert text.startswith(title) and len(text) > len(title) + 80, text
        assert page.images, title  # the plot


def test_an_empty_experiment_says_what_is_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    OnlineEngine(EventStore(url)).register(parse_spec(yaml.safe_load(Path("configs/genai.yaml").read_text())))
    sections, pdf = report(url, tmp_path / "out")
    assert ["".join(s["title"]) for s in sections] == TITLES
    for section in sections:
        assert not section["img"] and len("".join(section["missing"])) > 30
    assert len(pdf.pages) == 1 + len(TITLES)
    assert "No exploration run" in pdf.pages[1].extract_text()
    assert "no variants" in re.sub(r"\s+", " ", pdf.pages[5].extract_text())
