"""The report as one self-contained HTML page (plots inlined as PNG) and as a PDF (one page
of numbers, then a page per plot with its caption), from the same sections."""

from __future__ import annotations

import base64
import html
import io
import os
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from engine.report.figures import Section, sections
from engine.report.gather import ReportData

__all__ = ["FORMATS", "MEDIA_TYPES", "Report", "render", "write_report"]

FORMATS = ("html", "pdf")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
DPI = 110
PAGE = (8.27, 11.69)  # A4 portrait, inches
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .missing { color: #444; line-height: 1.4; } .missing { font-style: italic; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
.numbers td:first-child { text-align: left; }
"""


@dataclass(frozen=True)
class Report:
    """The report in each format asked for, as bytes: `html` (UTF-8) and `pdf`."""

    documents: dict[str, bytes]


def render(data: ReportData, formats: tuple[str, ...] = FORMATS) -> Report:
    """Draw every section once, then lay it out in each format (slow and pure: runs in any
    thread)."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"report formats {sorted(unknown)} are unknown; ask for any of {list(FORMATS)}")
    drawn = sections(data)
    documents = {}
    if "html" in formats:
        documents["html"] = _html(data, drawn).encode()
    if "pdf" in formats:
        documents["pdf"] = _pdf(data, drawn)
    return Report(documents)


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """`report.html` and/or `report.pdf` in `out_dir`, each written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, content in report.documents.items():
        path = out_dir / f"report.{fmt}"
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_bytes(content)
        os.replace(partial, path)
        paths.append(path)
    return paths


def _numbers(data: ReportData) -> list[tuple[str, str]]:
    s = data.status
    rows = [
        ("users", f"{s['users']}"),
        ("suggestions", f"{s['suggestions']}"),
        ("feedback", f"{s['feedback']}"),
    ]
    if s.get("feedback_rate") is not None:
        rows.append(("feedback rate", f"{s['feedback_rate']:.0%}"))
    if s.get("ratings"):
        rows += [
            (
                "ratings",
                f"{s['ratings']}: mean {s['mean_rating']:.2f}, {s['share_4_or_more']:.0%} of 4+ stars",
            ),
            ("convergence", f"{s['convergence']['score']:.0%} ({s['convergence']['definition']})"),
        ]
        alpha = s["rater_agreement"].get("alpha")
        agreement = f"Krippendorff's alpha {alpha:.2f}" if alpha is not None else s["rater_agreement"]["note"]
        rows.append(("rater agreement", agreement))
    rows.append(("exploration runs", f"{len(data.runs)}, {sum(len(r.trials) for r in data.runs)} trials"))
    return rows


def _when(data: ReportData) -> str:
    return datetime.fromtimestamp(data.generated_at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _html(data: ReportData, drawn: list[Section]) -> str:
    name = html.escape(data.spec.name)
    numbers = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _numbers(data)
    )
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Frontier report: {name}</title>",
        f"<style>{CSS}</style></head><body><h1>Frontier report: {name}</h1>",
        f"<p>Generated {_when(data)} from the experiment's stored events.</p>",
        f"<table class='numbers'>{numbers}</table>",
    ]
    for section in drawn:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        if section.figure is None:
            parts.append(f"<p class='missing'>{html.escape(section.missing or '')}</p></section>")
            continue
        png = base64.b64encode(_png(section.figure)).decode()
        alt = html.escape(section.title)
        parts.append(f"<figure><img src='data:image/png;base64,{png}' alt='{alt}'>")
        parts.append(f"<figcaption>{html.escape(section.caption)}</figcaption></figure>")
        if section.table is not None:
            parts.append(section.table.to_html(float_format=lambda v: f"{v:.4g}"))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _pdf(data: ReportData, drawn: list[Section]) -> bytes:
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Title": f"Frontier report: {data.spec.name}", "Creator": "Frontier"}
    with PdfPages(buffer, metadata=metadata) as pdf:
        lines = [f"Generated {_when(data)} from the experiment's stored events.", ""]
        lines += [f"{k}: {v}" for k, v in _numbers(data)]
        pdf.savefig(_text_page(f"Frontier report: {data.spec.name}", lines))
        for section in drawn:
            if section.figure is None:
                pdf.savefig(_text_page(section.title, [section.missing or ""]))
                continue
            pdf.savefig(_captioned(section.title, section.caption, section.figure))
    return buffer.getvalue()


def _text_page(title: str, lines: list[str]) -> Figure:
    fig = Figure(figsize=PAGE)
    fig.text(0.08, 0.94, title, fontsize=16, weight="bold", va="top")
    wrapped = [w for line in lines for w in (textwrap.wrap(line, 90) or [""])]
    fig.text(0.08, 0.9, "\n".join(wrapped), fontsize=10, va="top", linespacing=1.5)
    return fig


def _captioned(title: str, caption: str, figure: Figure) -> Figure:
    """The plot on an A4 page under its title, its caption below."""
    page = Figure(figsize=PAGE)
    page.text(0.08, 0.95, title, fontsize=14, weight="bold", va="top")
    image = matplotlib.image.imread(io.BytesIO(_png(figure)), format="png")
    ax = page.add_axes((0.06, 0.35, 0.88, 0.56))
    ax.imshow(image)
    ax.set_axis_off()
    page.text(0.08, 0.32, "\n".join(textwrap.wrap(caption, 95)), fontsize=10, va="top", linespacing=1.4)
    return page
