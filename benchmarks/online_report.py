"""The online benchmark's figures: per family and method over the grid's cells, the worst
cell, and one-sided paired Wilcoxon tests of ours against the best baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

from benchmarks.harness import md_table, quartiles
from benchmarks.online_grid import Cell, Outcome
from benchmarks.online_methods import ABLATIONS, BASELINES, LABELS
from engine.sim import TARGET_STARS

TARGET = TARGET_STARS  # expected stars of the recommendation, as `frontier simulate` counts
LAST = 10  # suggestions averaged at the end
RATINGS_MARGIN = 1  # ratings
SHARE_MARGIN = 5  # percentage points


def to_target(curve: np.ndarray) -> np.ndarray:
    """Per user: ratings until the recommendation reaches TARGET stars; ratings + 1 if never."""
    hit = curve >= TARGET
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, curve.shape[1] + 1)


@dataclass
class CellResult:
    """One label on one cell: per user ratings to target and mean stars of the last suggestions."""

    cell: Cell
    to_target: np.ndarray
    last_stars: np.ndarray
    ratings: int
    cpu: float

    @property
    def median(self) -> float:
        return float(np.median(self.to_target))

    @property
    def share(self) -> float:
        """Percent of users reaching the target within the ratings."""
        return 100 * float(np.mean(self.to_target <= self.ratings))


Results = dict[str, dict[str, dict[Cell, CellResult]]]  # family -> label -> cell -> result


def collect(outcomes: Sequence[Outcome]) -> Results:
    out: Results = {}
    for o in outcomes:
        last = o.suggested[:, -LAST:].mean(axis=1)
        for label, curve in o.recommended.items():
            by_cell = out.setdefault(o.job.cell.family, {}).setdefault(label, {})
            by_cell[o.job.cell] = CellResult(o.job.cell, to_target(curve), last, o.job.ratings, o.cpu)
    return {f: {lab: by[lab] for lab in LABELS if lab in by} for f, by in out.items()}


def spread(values: Sequence[float], digits: int = 0) -> str:
    """'median (q1-q3)' over cells."""
    q1, med, q3 = quartiles(values)
    return f"{med:.{digits}f} ({q1:.{digits}f}-{q3:.{digits}f})"


def worst(by_cell: dict[Cell, CellResult]) -> CellResult:
    """The cell with the lowest share reaching the target (ties: the higher median)."""
    return min(by_cell.values(), key=lambda r: (r.share, -r.median))


def family_table(results: dict[str, dict[Cell, CellResult]]) -> list[str]:
    head = [
        "method",
        "cells",
        "ratings to target: median over cells (IQR)",
        "% reaching ≤ ratings (IQR)",
        f"stars of last {LAST} suggestions (IQR)",
        "worst cell (pop, model seed): %, median",
        "CPU s/cell",
    ]
    rows = []
    for label, by_cell in results.items():
        cells = list(by_cell.values())
        bad = worst(by_cell)
        rows.append(
            [
                LABELS[label],
                str(len(cells)),
                spread([r.median for r in cells], 1),
                spread([r.share for r in cells]),
                spread([float(r.last_stars.mean()) for r in cells], 2),
                f"({bad.cell.pop_seed}, {bad.cell.model_seed}): {bad.share:.0f}%, {bad.median:g}",
                f"{np.median([r.cpu for r in cells]):.1f}",
            ]
        )
    return md_table(head, rows)


def best_baseline(results: dict[str, dict[Cell, CellResult]]) -> str | None:
    """The baseline with the lowest median (over cells) of ratings to target; ties: higher share."""
    present = [b for b in BASELINES if b in results]
    if not present:
        return None

    def score(label: str) -> tuple[float, float]:
        cells = results[label].values()
        return float(np.median([r.median for r in cells])), -float(np.mean([r.share for r in cells]))

    return min(present, key=score)


def one_sided(diff: np.ndarray, alternative: str) -> float:
    """Wilcoxon signed-rank p of `diff` (already shifted by the margin); 1 when all zero."""
    if not np.any(diff):
        return 1.0
    return float(wilcoxon(diff, alternative=alternative).pvalue)


def paired(ours: dict[Cell, CellResult], other: dict[Cell, CellResult]) -> list[str]:
    """Ours vs another label on their common cells: ratings to target paired by user within
    cell, and the per-cell share; each tested for ours better by more than the margin
    (superiority) and for ours not worse by the margin (non-inferiority)."""
    common = [c for c in ours if c in other]
    d = np.concatenate([ours[c].to_target - other[c].to_target for c in common]).astype(float)
    s = np.array([ours[c].share - other[c].share for c in common])
    m, sm = RATINGS_MARGIN, SHARE_MARGIN
    return [
        str(len(d)),
        f"{(d < 0).sum()} / {(d == 0).sum()} / {(d > 0).sum()}",
        f"{d.mean():+.1f}",
        f"{one_sided(d + m, 'less'):.2g}",
        f"{one_sided(d - m, 'less'):.2g}",
        str(len(s)),
        f"{s.mean():+.0f}",
        f"{one_sided(s - sm, 'greater'):.2g}",
        f"{one_sided(s + sm, 'greater'):.2g}",
    ]


TEST_HEAD = [
    "ours vs",
    "user pairs",
    "ours fewer / tie / more",
    "mean Δ ratings",
    f"p: ours ≥ {RATINGS_MARGIN} fewer",
    f"p: ours < {RATINGS_MARGIN} more",
    "cell pairs",
    "mean Δ % reaching",
    f"p: ours > +{SHARE_MARGIN} pts",
    f"p: ours > -{SHARE_MARGIN} pts",
]


def tests_table(results: dict[str, dict[Cell, CellResult]]) -> list[str]:
    """Ours against the best baseline, then against each ablation."""
    if "ours" not in results:
        return ["(ours was not run)"]
    best = best_baseline(results)
    others = [*([best] if best else []), *(a for a in ABLATIONS if a in results)]
    rows = []
    for label in others:
        name = LABELS[label] + (" (best baseline)" if label == best else "")
        rows.append([name, *paired(results["ours"], results[label])])
    return md_table(TEST_HEAD, rows) if rows else ["(no baseline was run)"]


def summary_table(results: Results, families: Sequence[str]) -> list[str]:
    """One row per family (in that order): ours, the best baseline and the tests."""
    head = ["family", "ours: ratings to target", "ours: % reaching", "best baseline", "its ratings", "its %"]
    head += [f"p: ours ≥ {RATINGS_MARGIN} fewer", f"p: % > +{SHARE_MARGIN} pts"]
    rows = []
    for fam in families:
        by_label = results[fam]
        best = best_baseline(by_label)
        if "ours" not in by_label or best is None:
            continue
        ours, theirs = by_label["ours"].values(), by_label[best].values()
        test = paired(by_label["ours"], by_label[best])
        rows.append(
            [
                fam,
                spread([r.median for r in ours], 1),
                spread([r.share for r in ours]),
                LABELS[best],
                spread([r.median for r in theirs], 1),
                spread([r.share for r in theirs]),
                test[3],
                test[7],
            ]
        )
    return md_table(head, rows) if rows else []


def family_section(fam: str, results: dict[str, dict[Cell, CellResult]]) -> list[str]:
    return [
        "",
        f"## Family `{fam}`",
        "",
        *family_table(results),
        "",
        *tests_table(results),
    ]


def explanation(ratings: int) -> list[str]:
    return [
        f"Ratings to target: per user, the first n at which the true expected stars of the "
        f"method's recommendation (after n ratings) reach {TARGET}; never within {ratings} counts "
        f"as {ratings + 1}. Per cell the median over its users; the table gives the median over "
        f"cells and the quartiles over cells (IQR). % reaching: users of a cell reaching {TARGET} "
        f"within {ratings} ratings. Stars of the last {LAST} suggestions: the true expected stars "
        f"of each user's last {LAST} suggestions when they were rated, averaged per cell. Worst "
        "cell: the lowest % reaching, with its population and model seeds (rerun it alone with "
        "`--families F --pop-seeds P --model-seeds M`).",
        "",
        "Tests (scipy.stats.wilcoxon, one-sided, paired): ratings to target paired by user "
        f"within cell, with a margin of {RATINGS_MARGIN} rating: 'ours ≥ {RATINGS_MARGIN} fewer' "
        f"tests median(ours - other) < -{RATINGS_MARGIN} (superiority by the margin), 'ours < "
        f"{RATINGS_MARGIN} more' tests median(ours - other) < +{RATINGS_MARGIN} (non-inferiority). "
        f"The per-cell % reaching, paired by cell, with a margin of {SHARE_MARGIN} points, "
        "likewise. Zero differences (after the margin) are dropped (Wilcoxon's rule). The best "
        "baseline is the baseline with the lowest median over cells of ratings to target (ties: "
        "the higher mean %), chosen per family; only the cells both ran are paired.",
    ]
