"""The report's plots (matplotlib's object API, no pyplot: safe off the main thread), each
with a caption saying what to read from it, or a sentence saying why it cannot be drawn yet.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure

from engine.experiments import served_name
from engine.offline.pareto import feasible, front, hypervolume_history, knee, metric_column, select_by_weights
from engine.report.gather import ReportData
from engine.report.summary import t_interval
from engine.spec import ExperimentSpec

__all__ = ["MIN_TRIALS_FOR_IMPORTANCE", "SECTIONS", "Section", "sections"]

MIN_TRIALS_FOR_IMPORTANCE = 10
MAX_CONTEXTS_DRAWN = 12
MIN_USERS_PER_POINT = 3  # a point of the convergence curve averages at least this many users


@dataclass
class Section:
    """A plot and what to read from it, or the sentence that stands in for it."""

    title: str
    caption: str
    figure: Figure | None = None
    missing: str | None = None
    table: pd.DataFrame | None = None


def sections(data: ReportData) -> list[Section]:
    return [draw(data) for draw in SECTIONS]


def _label(m_name: str, spec: ExperimentSpec) -> str:
    metric = next(m for m in spec.metrics if m.name == m_name)
    arrow = "higher is better" if metric.direction == "max" else "lower is better"
    return f"{metric.name} ({metric.unit}, {arrow})" if metric.unit else f"{metric.name} ({arrow})"


def pareto(data: ReportData) -> Section:
    title = "Pareto front"
    spec, metrics = data.spec, data.spec.metrics
    runs = [r for r in data.runs if feasible(r.trials, metrics).any()]
    if not runs:
        return Section(title, "", missing="No exploration run with a feasible trial is published yet: run "
                       f"`frontier explore <spec> --store <url>` for {spec.name!r}.")  # fmt: skip
    if len(metrics) < 2:
        return Section(title, "", missing="The experiment has one metric: there is no trade-off to draw.")
    run = runs[-1]
    trials, points = run.trials, front(run.trials, metrics)
    preferred = select_by_weights(points, metrics, spec.weights())
    knee_row = knee(points, metrics)
    pairs = list(itertools.combinations(range(len(metrics)), 2))[:3]
    panels = len(pairs) + (len(metrics) >= 3)
    rows, cols = (1, 1) if panels == 1 else (2, 2)
    fig = Figure(figsize=(5.0 * cols, 4.2 * rows), layout="constrained")
    for k, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(rows, cols, k + 1)
        x, y = metric_column(metrics[i].name), metric_column(metrics[j].name)
        ax.scatter(trials[x], trials[y], s=10, color="0.75", label="trials")
        # two metrics: the front is a curve; a projection of more is a cloud, drawn as points
        ax.plot(
            points[x], points[y], "o-" if len(metrics) == 2 else "o", ms=4, color="tab:blue", label="front"
        )
        ax.scatter(points.loc[[preferred], x], points.loc[[preferred], y], marker="*", s=220,
                   color="tab:red", zorder=5, label="preferred")  # fmt: skip
        ax.scatter(points.loc[[knee_row], x], points.loc[[knee_row], y], marker="D", s=70,
                   facecolors="none", edgecolors="black", zorder=6, label="knee")  # fmt: skip
        ax.set_xlabel(_label(metrics[i].name, spec))
        ax.set_ylabel(_label(metrics[j].name, spec))
    fig.axes[0].legend(fontsize=8)
    if len(metrics) >= 3:
        ax3 = fig.add_subplot(rows, cols, panels, projection="3d")
        names = [metric_column(m.name) for m in metrics[:3]]
        ax3.scatter(*(trials[c] for c in names), s=6, color="0.75")
        ax3.scatter(*(points[c] for c in names), s=14, color="tab:blue")
        ax3.scatter(*(points.loc[[preferred], c] for c in names), marker="*", s=200, color="tab:red")
        ax3.scatter(*(points.loc[[knee_row], c] for c in names), marker="D", s=60, color="black")
        for setter, m in zip((ax3.set_xlabel, ax3.set_ylabel, ax3.set_zlabel), metrics[:3], strict=True):
            setter(m.name)
    weights = ", ".join(f"{k} {v:g}" for k, v in spec.weights().items())
    caption = (
        f"The newest run with a feasible trial, {run.run_id} ({run.searcher}, {len(trials)} trials): "
        "each grey dot is a trial, the blue ones the trials no other beats on every metric (the "
        "front; with three metrics or more, 2-D views of the first pairs and a 3-D view of the "
        "first three). The star is the front point preferred under the experiment's weights "
        f"({weights}); the diamond is the knee, the point with the "
        "best equally weighted gain. Read along the front what one metric costs in another."
    )
    return Section(title, caption, fig)


def hypervolume(data: ReportData) -> Section:
    title = "Hypervolume over trials, per searcher"
    metrics = data.spec.metrics
    runs = [r for r in data.runs if len(r.trials)]
    if not runs:
        return Section(
            title, "", missing="No exploration run is published yet, so there is no hypervolume to show."
        )
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    for run in runs:
        history = hypervolume_history(run.trials, metrics)
        ax.plot(np.arange(1, len(history) + 1), history, label=f"{run.searcher} ({run.run_id})")
    ax.set_xlabel("trials finished")
    ax.set_ylabel("hypervolume")
    ax.legend(fontsize=8)
    caption = (
        "The volume of metric space the feasible trials dominate, up to the spec's reference "
        "point, after each finished trial; one line per exploration run. A line that is still "
        "rising at its end would gain from more trials; the higher line at equal trials is the "
        "better searcher on this problem."
    )
    return Section(title, caption, fig)


def importance(data: ReportData) -> Section:
    title = "Parameter importance (fANOVA)"
    spec, metrics = data.spec, data.spec.metrics
    space = spec.search_space()
    frames = [r.trials[feasible(r.trials, metrics)] for r in data.runs]
    pooled = pd.concat(frames) if frames else pd.DataFrame()
    inside = [space.contains({**space.fixed, **_params(row, space.free)}) for _, row in pooled.iterrows()]
    trials = pooled[inside] if len(pooled) else pooled  # a run of a wider space than the stored spec's
    outside = len(pooled) - len(trials)
    distributions = space.optuna_distributions()
    if len(trials) < MIN_TRIALS_FOR_IMPORTANCE or len(distributions) < 2:
        return Section(title, "", missing=(
            f"{len(trials)} feasible trials are published; parameter importance needs at least "
            f"{MIN_TRIALS_FOR_IMPORTANCE} and two free parameters."))  # fmt: skip
    study = optuna.create_study(directions=["minimize"] * len(metrics))
    for _, row in trials.iterrows():
        study.add_trial(optuna.trial.create_trial(
            params=_params(row, list(distributions)),
            distributions=distributions,
            values=[float(row[metric_column(m.name)]) for m in metrics],
        ))  # fmt: skip
    found = {}
    logging.getLogger("optuna").setLevel(logging.WARNING)
    for i, m in enumerate(metrics):
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found[m.name] = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=_target(i), normalize=True
        )
    table = pd.DataFrame(found).fillna(0.0)
    fig = Figure(figsize=(8, 0.5 + 0.45 * len(table) * max(1, len(metrics) / 2)), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / len(metrics)
    for k, m in enumerate(metrics):
        ax.barh(np.arange(len(table)) + k * height, table[m.name], height=height, label=m.name)
    ax.set_yticks(np.arange(len(table)) + 0.4 - height / 2, table.index)
    ax.set_xlabel("share of the metric's variance explained (fANOVA, Optuna)")
    ax.legend(fontsize=8)
    caption = (
        f"Over {len(trials)} feasible trials of every published run"
        + (f" ({outside} outside the experiment's space left out)" if outside else "")
        + ", how much of each metric's "
        "variance each parameter explains (Optuna's fANOVA on a random forest, per metric, "
        "normalised to sum to 1). Tune the long bars first; a parameter with short bars on "
        "every metric can be fixed."
    )
    return Section(title, caption, fig, table=table.round(3))


def _target(i: int) -> Callable[[optuna.trial.FrozenTrial], float]:
    return lambda t: float(t.values[i])


def _params(row: pd.Series, names: list[str]) -> dict[str, object]:
    values = {p: row.get(f"param.{p}") for p in names}
    return {p: v.item() if isinstance(v, np.generic) else v for p, v in values.items()}


def trend(data: ReportData) -> Section:
    title = "Rating trend and convergence"
    rated, found = data.rated, data.status
    if not len(rated):
        return Section(
            title, "", missing="No ratings yet: the trend and convergence appear with the first ratings."
        )
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    buckets = pd.DataFrame(found["trend"])
    x = buckets["from"] + (buckets["ratings"] - 1) / 2
    ax.fill_between(x, buckets["min"], buckets["max"], color="tab:blue", alpha=0.15, label="min-max")
    ax.errorbar(x, buckets["mean"], yerr=buckets["std"], fmt="o-", color="tab:blue", ms=3, label="mean ± std")
    ax.set_ylim(0.8, 5.2)
    ax.set_xlabel("ratings, in the order received (buckets of 10)")
    ax.set_ylabel("stars")
    ax.legend(fontsize=8)
    order = rated.sort_values("seq")
    nth = order.groupby("user_id").cumcount() + 1
    stars = order["rating"].astype(float)
    curve = [(n, g.to_numpy()) for n, g in stars.groupby(nth.to_numpy()) if len(g) >= MIN_USERS_PER_POINT]
    if curve:
        ns = [n for n, _ in curve]
        means = [g.mean() for _, g in curve]
        bands = np.array([t_interval(g) for _, g in curve], dtype=float)
        ax2.fill_between(ns, bands[:, 0], bands[:, 1], color="tab:green", alpha=0.2, label="95% t interval")
        ax2.plot(ns, means, "o-", color="tab:green", ms=3, label="mean over users")
    ax2.axhline(4.0, color="0.4", ls="--", lw=1)
    ax2.set_ylim(0.8, 5.2)
    ax2.set_xlabel("the user's n-th rating")
    ax2.legend(fontsize=8)
    convergence = found["convergence"]
    caption = (
        f"Left: ratings in the order received, per bucket of 10 (mean, std and range). Right: the "
        f"mean of every user's n-th rating (where at least {MIN_USERS_PER_POINT} users gave one), with "
        f"its 95% interval: a curve that climbs towards the dashed 4 stars means users are learnt. "
        f"Convergence score {convergence['score']:.0%}: the {convergence['definition']}."
    )
    return Section(title, caption, fig)


def variants(data: ReportData) -> Section:
    title = "Variants compared"
    rated = data.rated
    names = rated["variant"].map(served_name) if len(rated) else pd.Series(dtype=str)
    if names.nunique() < 2:
        return Section(title, "", missing=(
            "This experiment has no variants with ratings to compare (one or none): create them with "
            "`frontier variants create` or POST …/variants."))  # fmt: skip
    fig = Figure(figsize=(8, 1.6 + 0.5 * names.nunique()), layout="constrained")
    ax = fig.add_subplot()
    rows = []
    for k, (name, group) in enumerate(rated.groupby(names.to_numpy())):
        stars = group["rating"].to_numpy(dtype=float)
        low, high = t_interval(stars)
        mean = stars.mean()
        ax.errorbar([mean], [k], xerr=[[mean - (low if low is not None else mean)],
                    [(high if high is not None else mean) - mean]], fmt="o", capsize=4)  # fmt: skip
        rows.append({"variant": name, "ratings": len(stars), "mean": mean, "low": low, "high": high})
    ax.set_yticks(range(len(rows)), [f"{r['variant']} (n={r['ratings']})" for r in rows])
    ax.set_xlabel("mean rating (stars) with its 95% t interval")
    caption = (
        "Each variant's mean rating with its 95% t interval. Intervals that do not overlap "
        "differ clearly; for the decision (sequential tests, P(beat control), guardrails) read "
        "the A/B report (`frontier ab`)."
    )
    return Section(
        title, caption, fig, table=pd.DataFrame(rows).set_index("variant").rename_axis(None).round(3)
    )


def best_settings(data: ReportData) -> Section:
    title = "Best settings per context"
    if not data.best:
        return Section(title, "", missing="No context has ratings yet, so the learner has no best settings.")
    space = data.spec.search_space()
    drawn = list(data.best.items())[:MAX_CONTEXTS_DRAWN]
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    for label, found in drawn:
        ax.plot(space.free, space.to_unit(found["params"]), "o-", label=label)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([0, 1], ["low / first choice", "high / last choice"])
    ax.legend(fontsize=8)
    table = pd.DataFrame(
        {label: {**f["params"], "expected reward": f["expected_reward"]} for label, f in data.best.items()}
    ).T
    more = (
        f" (the first {MAX_CONTEXTS_DRAWN} of {len(data.best)} drawn)"
        if len(data.best) > MAX_CONTEXTS_DRAWN
        else ""
    )
    caption = (
        f"Per context{more}, the settings the learner serves a user it knows nothing of yet, each "
        "parameter placed within its range (categorical: its position among the choices). "
        "Lines that part ways show where contexts want different settings; the table gives the "
        "values and the expected reward."
    )
    return Section(title, caption, fig, table=table.T)


def calibration(data: ReportData) -> Section:
    title = "Rater calibration"
    raters = pd.DataFrame(data.calibrations)
    if not len(raters) or raters["rewards"].max() < 2:
        return Section(title, "", missing="No user has given feedback twice yet: calibration needs repeats.")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(raters["bias"], raters["scale"], s=10 + 6 * raters["rewards"], alpha=0.6)
    ax.axvline(0.0, color="0.5", lw=1)
    ax.axhline(1.0, color="0.5", lw=1)
    ax.set_xlabel("bias (reward units; > 0: rates more generously than the population)")
    ax.set_ylabel("scale (spread against the population's)")
    caption = (
        f"One dot per user ({len(raters)}), sized by their rated feedback. The learner removes each "
        "user's bias and divides by their scale before learning, so a harsh or a generous rater "
        "weighs as much as anyone; both are shrunk towards 0 and 1 until a user has rated often."
    )
    return Section(title, caption, fig)


SECTIONS: list[Callable[[ReportData], Section]] = [
    pareto, hypervolume, importance, trend, variants, best_settings, calibration,
]  # fmt: skip
