"""The files of a ``distrl-report``: ``report.md`` (what the command prints), ``per_game.csv``,
``aggregates.csv``, ``aggregates.json`` and, optionally, the figures."""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distrl_agents.evaluation.aggregates import METRIC_NAMES, METRICS, performance_profile
from distrl_agents.evaluation.records import (
    FINAL_FILE,
    RESULTS_FILE,
    RunResult,
    record_hns,
    record_score,
    to_json,
)

if TYPE_CHECKING:
    from distrl_agents.evaluation.report import Report

__all__ = ["write_report_files"]

#: What the figures need besides the report: the runs by agent label -> game -> seed, the
#: aggregates' HNS [runs, games] matrix per agent, and the bootstrap seed.
PlotInputs = tuple[
    Mapping[str, Mapping[str, Mapping[int, RunResult]]], Mapping[str, np.ndarray], int
]


def write_report_files(
    report: Report,
    dirs: Sequence[str | os.PathLike[str]],
    out_dir: Path,
    plot_inputs: PlotInputs | None,
) -> None:
    """Write the report's files to ``out_dir``; sets ``report.files`` (``report.md`` first) and
    ``report.markdown``. No figures when ``plot_inputs`` is None."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        _write_text(out_dir / "per_game.csv", _per_game_csv(report)),
        _write_text(out_dir / "aggregates.csv", _aggregates_csv(report)),
        _write_text(
            out_dir / "aggregates.json", to_json(_aggregates_json(report), indent=2) + "\n"
        ),
    ]
    if plot_inputs is not None:
        files += _make_plots(report, *plot_inputs, out_dir)
    report.files = files
    report.markdown = _markdown(report, dirs, [f.name for f in files])
    report.files.insert(0, _write_text(out_dir / "report.md", report.markdown))


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 10 else f"{x:.{digits}f}"


def _per_game_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["agent", "game", "source", "n_seeds", "seeds", "raw_mean", "raw_std", "hns_mean"])
    for agent in report.agents:
        for game, s in report.per_game[agent].items():
            hm = s.hns_mean
            w.writerow(
                [
                    agent,
                    game,
                    s.source,
                    s.n,
                    " ".join(map(str, s.seeds)) if s.source == "runs" else "",
                    repr(s.raw_mean),
                    repr(s.raw_std),
                    "" if hm is None else repr(hm),
                ]
            )
    return buf.getvalue()


def _aggregates_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["agent", "metric", "point", "low", "high", "confidence", "n_games", "n_runs"])
    for agent, metrics in report.aggregates.items():
        for metric, (p, lo, hi) in metrics.items():
            w.writerow(
                [agent, metric, repr(p), repr(lo), repr(hi), report.confidence,
                 len(report.aggregate_games[agent]), report.aggregate_runs[agent]]
            )  # fmt: skip
    return buf.getvalue()


def _aggregates_json(report: Report) -> dict[str, Any]:
    cov = report.coverage
    return {
        "score": "human-normalized score (HNS), 1.0 = human, 0.0 = random",
        "confidence": report.confidence,
        "bootstrap_reps": report.reps,
        "benchmark": {
            "description": cov.describe(),
            "exact": cov.benchmark,
            "compared_with": cov.nearest,
            "games": list(cov.games),
            "missing": list(cov.missing),
            "extra": list(cov.extra),
        },
        "agents": {
            agent: {
                "games": report.aggregate_games[agent],
                "runs_per_game": report.aggregate_runs[agent],
                "metrics": {
                    m: {"point": p, "low": lo, "high": hi} for m, (p, lo, hi) in metrics.items()
                },
            }
            for agent, metrics in report.aggregates.items()
        },
        "published_aggregates": report.published_aggregate_rows,
        "der_settings": [
            {"agent": a, "game": g, "seed": sd, "preset": p, "der_settings": d}
            for a, g, sd, p, d in report.der_settings
        ],
        "notes": report.notes,
    }


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(report: Report, dirs: Sequence[str | os.PathLike[str]], files: list[str]) -> str:
    parts = _md_header(report, dirs)
    parts += _md_per_game(report)
    parts += _md_aggregates(report)
    parts += _md_published_aggregates(report)
    parts += _md_der_settings(report)
    if report.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    parts += ["## Files", ""] + [f"- {f}" for f in ["report.md", *files]] + [""]
    return "\n".join(parts)


def _md_header(report: Report, dirs: Sequence[str | os.PathLike[str]]) -> list[str]:
    n_final = sum(1 for r in report.runs if r.final.get("source") == "distrl-eval")
    return [
        "# distrl-agents evaluation report",
        "",
        f"- Runs: {len(report.runs)} run directories under {', '.join(map(str, dirs))} "
        f"({n_final} with {FINAL_FILE}; the others use the last line of {RESULTS_FILE}).",
        f"- Benchmark coverage: {report.coverage.describe()}.",
        "- HNS = human-normalized score (score - random) / (human - random): 0 = random, "
        "1 = human (Atari-57 reference table, as rliable/MuZero).",
        "",
    ]


def _md_per_game(report: Report) -> list[str]:
    header = ["game"]
    for agent in report.agents:
        header += [f"{agent} raw (n)", f"{agent} HNS"]
    games = sorted({g for a in report.agents for g in report.per_game[a]})
    rows = []
    for game in games:
        row = [game]
        for agent in report.agents:
            s = report.per_game[agent].get(game)
            if s is None:
                row += ["-", "-"]
            else:
                raw = _fmt(s.raw_mean, 2) + (f" ± {_fmt(s.raw_std, 2)}" if s.n > 1 else "")
                raw += " (published)" if s.source == "published" else f" (n={s.n})"
                row += [raw, _fmt(s.hns_mean)]
        rows.append(row)
    return [
        "## Per-game scores (final score, mean over seeds)",
        "",
        _md_table(header, rows),
        "",
        "raw: mean ± sample std over n seeds; HNS: mean over seeds.",
        "",
    ]


def _md_aggregates(report: Report) -> list[str]:
    pct = round(100 * report.confidence)
    parts = [
        f"## Aggregate HNS ({pct}% stratified-bootstrap CIs, {report.reps} resamples)",
        "",
    ]
    if not report.aggregates:
        return [*parts, "No game with human/random reference scores: no HNS aggregates.", ""]
    header = ["agent", "games", "runs/game"] + [METRIC_NAMES[m] for m in METRICS]
    rows = []
    for agent, metrics in report.aggregates.items():
        row = [agent, str(len(report.aggregate_games[agent])), str(report.aggregate_runs[agent])]
        for m in METRICS:
            p, lo, hi = metrics[m]
            row.append(f"{_fmt(p)} [{_fmt(lo)}, {_fmt(hi)}]")
        rows.append(row)
    return [
        *parts,
        _md_table(header, rows),
        "",
        "Median and mean: over games of the per-game mean over runs; IQM: mean of the middle "
        "50% of all run x game scores; optimality gap: mean of max(1 - HNS, 0), lower is "
        "better (Agarwal et al. 2021).",
        "",
    ]


def _md_published_aggregates(report: Report) -> list[str]:
    if not report.published_aggregate_rows:
        return []
    rows = []
    for r in report.published_aggregate_rows:
        mean = float(r["mean_hns_pct"]) / 100 if r["mean_hns_pct"] else None
        med = float(r["median_hns_pct"]) / 100 if r["median_hns_pct"] else None
        rows.append(
            [r["algorithm"], _fmt(med), _fmt(mean), r["n_games"], r["frames"],
             r["protocol"], r["value_type"]]
        )  # fmt: skip
    header = ["algorithm", "median HNS", "mean HNS", "games", "frames", "protocol", "how obtained"]
    return [
        "## Published aggregates (from the literature, not recomputed from these runs)",
        "",
        _md_table(header, rows),
        "",
        "Sources: distrl_agents/evaluation/data/published_aggregates.csv (per-row source "
        "column). These cover 54-57 games at 200M frames; compare only like with like.",
        "",
    ]


def _md_der_settings(report: Report) -> list[str]:
    if not report.der_settings:
        return []
    return [
        "## Settings compared with DER",
        "",
        "DER (published) is data-efficient Rainbow with the paper's settings (van Hasselt "
        "et al. 2019); each run's preset says whether it used those settings:",
        "",
        _md_table(
            ["agent", "game", "seed", "preset", "DER settings"],
            [[a, g, str(sd), p or "-", d] for a, g, sd, p, d in report.der_settings],
        ),
        "",
    ]


def curve_inputs(
    report: Report, grouped: Mapping[str, Mapping[str, Mapping[int, RunResult]]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, dict[str, float]]]:
    """What the learning-curve figure draws: per run agent and game the curve over seeds
    (:func:`_curve_stats`), the y label of each game's panel, and per published agent and game
    its score on the same scale (a dashed line)."""
    curves: dict[str, dict[str, Any]] = {}
    ylabels: dict[str, str] = {}
    use_hns: dict[str, bool] = {}
    for agent, by_game in grouped.items():
        curves[agent] = {}
        for game, by_seed in by_game.items():
            if game not in use_hns:
                # One scale per panel: HNS only where every agent of the game has one.
                use_hns[game] = report.curves != "raw" and all(
                    report.per_game[a][game].hns is not None
                    for a in grouped
                    if game in report.per_game.get(a, {})
                )
            ylabels[game] = "HNS" if use_hns[game] else "raw score"
            curves[agent][game] = _curve_stats(list(by_seed.values()), use_hns[game])
    references: dict[str, dict[str, float]] = {}
    for agent in report.agents:
        if agent in grouped:
            continue
        for game, hns_on in use_hns.items():
            stats = report.per_game.get(agent, {}).get(game)
            if stats is None:
                continue
            y = stats.hns_mean if hns_on else stats.raw_mean
            if y is not None:
                references.setdefault(agent, {})[game] = y
    return curves, ylabels, references


def _make_plots(
    report: Report,
    grouped: Mapping[str, Mapping[str, Mapping[int, RunResult]]],
    agg_inputs: Mapping[str, np.ndarray],
    seed: int,
    out_dir: Path,
) -> list[Path]:
    from distrl_agents.evaluation import plots

    files: list[Path] = []
    curves, ylabels, references = curve_inputs(report, grouped)
    files += plots.plot_learning_curves(
        curves, ylabels, out_dir / "learning_curves", references=references
    )
    if report.aggregates:
        files += plots.plot_interval_estimates(
            report.aggregates, out_dir / "aggregate_intervals", report.confidence
        )
        everything = np.concatenate([m.reshape(-1) for m in agg_inputs.values()])
        taus = np.linspace(
            min(0.0, float(everything.min())), max(1.0, float(everything.max())), 101
        )
        profiles = performance_profile(
            dict(agg_inputs), taus, reps=report.reps, confidence=report.confidence, seed=seed
        )
        files += plots.plot_performance_profiles(
            taus,
            profiles,
            out_dir / "performance_profiles",
        )
    return files


def _curve_stats(
    runs: list[RunResult], use_hns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One learning curve over seeds: frames [T] and the mean, min and max score [T] there."""
    by_frames: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        for rec in r.curve or [r.final]:
            score = record_score(rec)
            y = record_hns(r.game, score, rec.get("hns")) if use_hns else score
            if y is not None and math.isfinite(y):
                by_frames[int(rec["frames"])].append(y)
    xs = sorted(by_frames)
    ys = [np.asarray(by_frames[x]) for x in xs]
    return (
        np.asarray(xs, dtype=np.float64),
        np.asarray([y.mean() for y in ys]),
        np.asarray([y.min() for y in ys]),
        np.asarray([y.max() for y in ys]),
    )
