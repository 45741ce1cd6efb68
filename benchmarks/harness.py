"""What every benchmark shares: its command line, its report, its process pool, its statistics.

A report opens with when, where and how it was produced (the command that reproduces it)
and closes with the total runtime and the load average, because timings only compare
between runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

T = TypeVar("T")
R = TypeVar("R")


def arguments(doc: str | None, result: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its module docstring as help, `--out` its report's path."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=RESULTS / result, help="the report (default: %(default)s)"
    )
    return parser


def at_least_one(text: str) -> int:
    """An argparse type: a count (of seeds, users, repeats) of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def seeds(n: int) -> tuple[int, ...]:
    """Seeds 0..n-1: every method of a benchmark runs on the same ones."""
    return tuple(range(n))


# -- the report -----------------------------------------------------------------------------


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [md_row(head), md_row(["---"] * len(head)), *(md_row(r) for r in rows)]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def command_line() -> str:
    """The command that produced the report, as run from the repository root."""

    def rel(path: str) -> str:
        try:
            return os.path.relpath(path)
        except ValueError:
            return path

    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    program = ["-m", spec.name] if spec is not None else [rel(sys.argv[0])]
    return shlex.join([rel(sys.executable), *program, *sys.argv[1:]])


def load_text() -> str:
    """Load average (1/5/15 min)."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def versions(packages: Sequence[str]) -> str:
    return ", ".join([*(f"{name} {version(name)}" for name in packages), f"python {sys.version.split()[0]}"])


class Report:
    """A Markdown report, its header written when the benchmark starts."""

    def __init__(self, title: str, packages: Sequence[str], setup: Sequence[str] = ()) -> None:
        """`packages`: whose versions the numbers depend on; `setup`: what was run, one line each."""
        self.started = datetime.datetime.now()
        self.t0 = time.perf_counter()
        self.lines = [
            f"# {title}",
            "",
            f"- date: {self.started:%Y-%m-%d %H:%M} (local time)",
            f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
            f"- versions: {versions(packages)}",
            f"- command: `{command_line()}`",
            *(f"- {line}" for line in setup),
            f"- load average (1/5/15 min) at start: {load_text()}",
        ]

    def add(self, lines: Sequence[str]) -> None:
        self.lines += lines

    def add_setup(self, lines: Sequence[str]) -> None:
        """More header lines (what was only known after running), before the load at start."""
        at = next(i for i, line in enumerate(self.lines) if line.startswith("- load average"))
        self.lines[at:at] = [f"- {line}" for line in lines]

    def write(self, out: Path, notes: Sequence[str] = ()) -> None:
        """Close with `notes`, the total runtime and the load; print, and write to `out`."""
        if notes:
            self.lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
        total = (time.perf_counter() - self.t0) / 60
        self.lines += ["", f"Total runtime: {total:.1f} min; load average at the end: {load_text()}."]
        text = "\n".join(self.lines) + "\n"
        print(text)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        log(f"wrote {out}")


def log(message: str) -> None:
    """Progress on stderr, timestamped, so stdout stays the report."""
    print(f"{datetime.datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)


# -- running and timing ---------------------------------------------------------------------


def run_pool(
    work: Callable[[T], R], jobs: Sequence[T], describe: Callable[[R], str], workers: int = 2
) -> list[R]:
    """`work` on every job in a process pool (two workers: the machine's two cores), in
    completion order, logging each as it finishes."""
    outcomes: list[R] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, job) for job in jobs]
        for future in as_completed(futures):
            outcomes.append(future.result())
            elapsed = time.perf_counter() - start
            log(f"[{len(outcomes)}/{len(jobs)}] {describe(outcomes[-1])} (elapsed {elapsed:.0f} s)")
    return outcomes


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """`call()`'s result and its wall time in seconds."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


# -- statistics -----------------------------------------------------------------------------


def quartiles(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(med), float(q3)


def iqr(values: Sequence[float] | np.ndarray) -> float:
    q1, _, q3 = quartiles(values)
    return q3 - q1


def percentile_cells(
    values: Sequence[float] | np.ndarray, percentiles: Sequence[float], digits: int = 2, scale: float = 1.0
) -> list[str]:
    """Percentiles of `values` times `scale` (1e3: seconds as ms), as table cells; 100 is the worst."""
    return [f"{v * scale:.{digits}f}" for v in np.percentile(values, percentiles)]
