"""Report figures: learning curves, aggregate interval estimates, performance profiles.

Uses matplotlib's object-oriented API with the Agg canvas (``matplotlib.figure.Figure``), so it
never touches pyplot's global backend state and works on headless machines. Every plot is written
as PNG and SVG next to each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from distrl_agents.evaluation.aggregates import METRIC_NAMES

# One curve per agent: (x [T], mean [T], low [T], high [T]).
Curve = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Interval = tuple[float, float, float]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _colors(labels: Sequence[str]) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def format_frames(x: float, _pos: object = None) -> str:
    """A frame count as a tick label: ``0``, ``250k``, ``1.5M``, ``200M`` (full numbers of six
    or more digits run into each other on a panel's axis)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:.4g}"


def frames_axis(ax) -> None:  # type: ignore[no-untyped-def]
    """Label ``ax``'s x axis as frames, with at most 5 compact ticks (:func:`format_frames`)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_xlabel("frames")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(FuncFormatter(format_frames))


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        # "tight": the saved area holds every title and label, whatever the figure size.
        fig.savefig(path, dpi=120 if ext == "png" else None, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, Curve]],
    ylabels: Mapping[str, str],
    stem: Path,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Path]:
    """One panel per game; per agent the mean over seeds against frames with a band.

    ``curves[agent][game] = (frames, mean, low, high)``; ``ylabels[game]`` names the y axis
    (``"HNS"`` or ``"raw score"``). ``references[name][game]`` (published scores) are drawn as
    dashed horizontal lines on the games that have a curve.
    """
    references = references or {}
    games = sorted({g for per_game in curves.values() for g in per_game})
    agents = list(curves)
    colors = _colors(agents + [r for r in references if r not in curves])
    ncols = min(4, max(1, len(games)))
    nrows = max(1, math.ceil(len(games) / ncols))
    # At least 5 inches wide: the title fits above a single panel.
    fig = _figure(max(3.6 * ncols, 5.0), 2.8 * nrows + 0.3)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(-1)
    for ax, game in zip(axes, games):
        for agent in agents:
            if game not in curves[agent]:
                continue
            x, m, lo, hi = curves[agent][game]
            ax.plot(x, m, color=colors[agent], label=agent, marker="." if len(x) < 3 else None)
            ax.fill_between(x, lo, hi, color=colors[agent], alpha=0.2, linewidth=0)
        for name, per_game in references.items():
            if game in per_game and math.isfinite(per_game[game]):
                ax.axhline(per_game[game], color=colors[name], ls="--", lw=1, label=name)
        ax.set_title(game)
        frames_axis(ax)
        ax.set_ylabel(ylabels.get(game, "score"))
        ax.grid(alpha=0.3)
    for ax in axes[len(games) :]:
        ax.set_visible(False)
    if agents and games:
        axes[0].legend(fontsize="small")
    subtitle = "mean over seeds; band = min..max over seeds"
    if references:
        subtitle += "; dashed = published"
    fig.suptitle(f"Learning curves\n{subtitle}", fontsize="medium")
    return _save(fig, stem)


def plot_interval_estimates(
    intervals: Mapping[str, Mapping[str, Interval]],
    stem: Path,
    confidence: float = 0.95,
) -> list[Path]:
    """One row per metric, one horizontal interval (with the point estimate) per agent."""
    agents = list(intervals)
    metrics = [m for m in METRIC_NAMES if any(m in intervals[a] for a in agents)]
    colors = _colors(agents)
    fig = _figure(6.0, 0.6 + (0.35 * len(agents) + 0.6) * max(1, len(metrics)))
    axes = np.atleast_1d(fig.subplots(max(1, len(metrics)), 1, squeeze=False)).reshape(-1)
    for ax, metric in zip(axes, metrics):
        for row, agent in enumerate(agents):
            if metric not in intervals[agent]:
                continue
            point, low, high = intervals[agent][metric]
            ax.plot([low, high], [row, row], color=colors[agent], linewidth=6, alpha=0.5)
            ax.plot([point], [row], color=colors[agent], marker="|", markersize=14, mew=2)
        ax.set_yticks(range(len(agents)), agents)
        ax.set_ylim(len(agents) - 0.3, -0.7)  # first agent on top
        ax.set_title(METRIC_NAMES[metric], fontsize="medium", loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(
        f"human-normalized score ({round(100 * confidence)}% stratified-bootstrap CI)"
    )
    return _save(fig, stem)


def plot_performance_profiles(
    taus: np.ndarray,
    profiles: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    stem: Path,
    *,
    title: str = "Performance profiles (score distributions)",
    dashed: Sequence[str] = (),
) -> list[Path]:
    """Fraction of runs x games with HNS > tau, per agent, with its bootstrap band; the labels
    in ``dashed`` (references such as a paper's per-game means) are dashed lines."""
    agents = list(profiles)
    colors = _colors(agents)
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    for agent in agents:
        p, lo, hi = profiles[agent]
        style = "--" if agent in dashed else "-"
        ax.plot(taus, p, style, color=colors[agent], label=agent)
        ax.fill_between(taus, lo, hi, color=colors[agent], alpha=0.2, linewidth=0)
    ax.set_xlabel(r"human-normalized score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if agents:
        ax.legend(fontsize="small")
    ax.set_title(title)
    return _save(fig, stem)


__all__ = ["plot_interval_estimates", "plot_learning_curves", "plot_performance_profiles"]
