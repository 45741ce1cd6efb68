"""What every benchmark report shares: Markdown rows, the machine, the command, logging.

Benchmarks run as scripts (`python benchmarks/x.py`), so they import this as `reporting`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def command_line() -> str:
    """The command that produced the report, with paths relative to where it ran."""

    def rel(path: str) -> str:
        try:
            return os.path.relpath(path)
        except ValueError:
            return path

    return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])


def load_text() -> str:
    """Load average (1/5/15 min): timings are only comparable on a quiet machine."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def notes_section(notes: Sequence[str], total_s: float) -> list[str]:
    """The report's closing `## Notes` list, total runtime and the load at the end."""
    ending = f"Total runtime: {total_s / 60:.1f} min; load average at the end: {load_text()}."
    return ["", "## Notes", "", *[f"- {n}" for n in notes], "", ending]


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, its module docstring as the help text."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def write_report(text: str, out: Path) -> None:
    """The report on stdout and in `out`."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")


def log(message: str) -> None:
    """Progress on stderr, timestamped, so stdout stays the report."""
    print(f"{datetime.datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)
