"""``distrl-report``'s computation: per-game scores, aggregate human-normalized scores with
bootstrap confidence intervals, and the notes that qualify them.

:func:`build_report` reads the runs (:mod:`~distrl_agents.evaluation.records`), says which
benchmark their games cover and adds published scores (:mod:`~distrl_agents.evaluation.benchmarks`),
computes the tables below and writes the report's files
(:mod:`~distrl_agents.evaluation.report_files`). Aggregate statistics follow Agarwal et al. 2021
(rliable); see :mod:`distrl_agents.evaluation.aggregates`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distrl_agents.evaluation.aggregates import aggregate_metrics_with_ci
from distrl_agents.evaluation.benchmarks import (
    BENCHMARK_NAMES,
    DOPAMINE_BASELINES,
    DOPAMINE_BASELINES_NOTE,
    Coverage,
    atari100k_methods,
    benchmark_coverage,
    der_settings,
    name_key,
    normalize_benchmark_name,
    published_aggregate_names,
    published_aggregates,
    published_per_game,
    published_per_game_methods,
)
from distrl_agents.evaluation.normalization import human_normalized_score
from distrl_agents.evaluation.records import ReportError, RunResult, load_runs, record_hns
from distrl_agents.evaluation.report_files import write_report_files

__all__ = ["GameStats", "Report", "build_report"]

#: the y scales ``distrl-report --curves`` accepts
CURVE_SCALES = ("auto", "hns", "raw")

#: agent label -> game -> seed -> run
Grouped = dict[str, dict[str, dict[int, RunResult]]]


@dataclass
class GameStats:
    agent: str
    game: str
    seeds: list[int]
    raw: list[float]  # final score per seed, in seed order
    hns: list[float] | None  # None when the game has no reference scores
    source: str  # "runs" or "published"

    @property
    def n(self) -> int:
        return len(self.raw)

    @property
    def raw_mean(self) -> float:
        return float(np.mean(self.raw))

    @property
    def raw_std(self) -> float:
        return float(np.std(self.raw, ddof=1)) if self.n > 1 else 0.0

    @property
    def hns_mean(self) -> float | None:
        return None if self.hns is None else float(np.mean(self.hns))


@dataclass
class Report:
    """Everything ``distrl-report`` computes; :attr:`markdown` is what it prints."""

    runs: list[RunResult]
    coverage: Coverage
    agents: list[str]  # run agents first, then published ones
    per_game: dict[str, dict[str, GameStats]]  # agent -> game -> stats
    aggregates: dict[str, dict[str, tuple[float, float, float]]]  # agent -> metric -> CI
    aggregate_games: dict[str, list[str]]  # agent -> games in its aggregate
    aggregate_runs: dict[str, int]  # agent -> runs per game used in its aggregate
    published_aggregate_rows: list[dict[str, Any]]
    notes: list[str]
    reps: int
    confidence: float
    #: with ``--compare DER``: (label, game, seed, preset, which DER settings) per run
    der_settings: list[tuple[str, str, int, str | None, str]] = field(default_factory=list)
    #: the learning curves' y scale: "auto" (HNS where every agent of a game has one), "hns"
    #: (the same; names the intent) or "raw" (raw game score everywhere)
    curves: str = "auto"
    markdown: str = ""
    files: list[Path] = field(default_factory=list)


def _label_runs(runs: list[RunResult]) -> dict[int, str]:
    """Each run's row label: its agent, plus the protocol when one agent's runs use both, plus
    the settings in which one agent's runs differ (a sweep over ``agent.lr``, say:
    ``c51 [agent.lr=0.0001]``), so that different experiments are never pooled."""
    protocols: dict[str, set[str | None]] = defaultdict(set)
    for r in runs:
        protocols[r.agent].add(r.protocol)
    base = {
        id(r): (r.agent if len(protocols[r.agent]) == 1 else f"{r.agent} ({r.protocol})")
        for r in runs
    }
    by_label: dict[str, list[RunResult]] = defaultdict(list)
    for r in runs:
        by_label[base[id(r)]].append(r)
    labels = dict(base)
    for label, group in by_label.items():
        shared = set.intersection(*(set(r.settings) for r in group))
        differing = sorted(
            k for k in shared if len({json.dumps(r.settings[k], sort_keys=True) for r in group}) > 1
        )
        for r in group:
            if differing:
                parts = ",".join(f"{k}={_setting_text(r.settings[k])}" for k in differing)
                labels[id(r)] = f"{label} [{parts}]"
    return labels


def _setting_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class _Aggregates:
    """Aggregate HNS of every agent with HNS: the inputs and the intervals."""

    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # agent -> HNS [runs, games]
    metrics: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    games: dict[str, list[str]] = field(default_factory=dict)  # agent -> games aggregated
    runs: dict[str, int] = field(default_factory=dict)  # agent -> runs per game aggregated


def build_report(
    dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    benchmark: str = "auto",
    compare: Sequence[str] = (),
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    plots: bool = True,
    curves: str = "auto",
) -> Report:
    """Compute the report for the runs under ``dirs`` and write it to ``out`` (default
    ``<dirs[0]>/report``). Raises :class:`ReportError` for user-facing problems."""
    bench_key = _check_arguments(dirs, reps, benchmark, compare)
    if curves not in CURVE_SCALES:
        raise ReportError(f"curves must be one of {', '.join(CURVE_SCALES)}, got {curves!r}")
    runs = load_runs(dirs)
    notes: list[str] = []
    labels = _label_runs(runs)
    grouped = _group_runs(runs, labels, notes)
    games = sorted({g for by_game in grouped.values() for g in by_game})
    max_frames = max(r.final_frames for r in runs)
    coverage = benchmark_coverage(games, bench_key, max_frames=max_frames)
    aggregated_games = _aggregated_games(games, coverage, bench_key, notes)
    per_game = _run_game_stats(grouped)
    published_agents = _add_published_per_game(compare, games, per_game, notes)
    agents = sorted(grouped) + published_agents
    aggregates = _aggregate(per_game, agents, aggregated_games, reps, confidence, seed, notes)
    notes += _truncation_notes(runs, labels)
    if published_agents:
        notes.append(
            "a published per-game score is one number per game, treated as one run: its "
            "bootstrap interval has zero width and says nothing about its seed variance"
        )
    report = Report(
        der_settings=_der_rows(runs, labels, compare),
        runs=runs,
        coverage=coverage,
        agents=agents,
        per_game=per_game,
        aggregates=aggregates.metrics,
        aggregate_games=aggregates.games,
        aggregate_runs=aggregates.runs,
        published_aggregate_rows=_published_aggregate_rows(compare),
        notes=notes,
        reps=reps,
        confidence=confidence,
        curves=curves,
    )
    out_dir = Path(out) if out is not None else Path(dirs[0]) / "report"
    plotted = (grouped, aggregates.inputs, seed) if plots else None
    write_report_files(report, dirs, out_dir, plotted)
    return report


def _truncation_notes(runs: list[RunResult], labels: dict[int, str]) -> list[str]:
    """One note per frame cap under which final scores include games the cap cut (records'
    ``games_truncated``): their scores, and the HNS, are those of unfinished games."""
    by_cap: dict[Any, list[str]] = {}
    for run in runs:
        cut = int(run.final.get("games_truncated") or 0)
        if cut:
            games = run.final.get("games") or len(run.final.get("episode_returns") or [])
            name = f"{labels.get(id(run), run.agent)} {run.game} seed {run.seed} ({cut} of {games})"
            by_cap.setdefault(run.final.get("max_frames_per_game"), []).append(name)
    notes = []
    for cap, names in sorted(by_cap.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        where = "the frame cap" if cap is None else f"the frame cap of {int(cap):,} frames"
        notes.append(
            f"final scores that include games cut by {where} (their scores, and the HNS, are "
            f"those of unfinished games): {', '.join(names)}"
        )
    return notes


def _check_arguments(
    dirs: Sequence[str | os.PathLike[str]], reps: int, benchmark: str, compare: Sequence[str]
) -> str:
    """Check the arguments before the (slower) work; returns the benchmark's key."""
    if not dirs:
        raise ReportError("give at least one results directory")
    if reps < 1:
        raise ReportError(f"--reps must be >= 1, got {reps}")
    bench_key = normalize_benchmark_name(benchmark)
    per_game_methods = {name_key(m): m for m in published_per_game_methods()}
    agg_names = {name_key(n): n for n in published_aggregate_names()}
    unknown = [c for c in compare if name_key(c) not in per_game_methods | agg_names]
    if unknown:
        raise ReportError(
            f"unknown --compare name(s) {unknown}. Published per-game scores: Atari-100k "
            f"{', '.join(atari100k_methods())}; Dopamine's baselines (200M frames, sticky "
            f"actions) {', '.join(DOPAMINE_BASELINES)}. Published aggregates: "
            f"{', '.join(agg_names.values())}"
        )
    return bench_key


def _group_runs(runs: list[RunResult], labels: dict[int, str], notes: list[str]) -> Grouped:
    """agent label -> game -> seed -> run; of two runs in one slot the longer is kept."""
    grouped: Grouped = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        slot = grouped[labels[id(r)]][r.game]
        if r.seed in slot:
            keep, drop = sorted([slot[r.seed], r], key=lambda x: (x.final_frames, str(x.run_dir)))[
                ::-1
            ]
            notes.append(
                f"{labels[id(r)]} / {r.game} / seed {r.seed} appears twice: using {keep.run_dir} "
                f"({keep.final_frames} frames), ignoring {drop.run_dir}"
            )
            slot[r.seed] = keep
        else:
            slot[r.seed] = r
    return grouped


def _aggregated_games(
    games: list[str], coverage: Coverage, bench_key: str, notes: list[str]
) -> list[str]:
    """The games the aggregates may use: with an explicit benchmark, only its games."""
    if bench_key == "auto" or not coverage.extra:
        return games
    notes.append(
        f"games outside {BENCHMARK_NAMES[bench_key]} are listed per game but left out of the "
        f"aggregates: {', '.join(coverage.extra)}"
    )
    return [g for g in games if g not in coverage.extra]


def _run_game_stats(grouped: Grouped) -> dict[str, dict[str, GameStats]]:
    """agent -> game -> final scores over seeds, for the agents of the runs."""
    per_game: dict[str, dict[str, GameStats]] = {}
    for agent in sorted(grouped):
        per_game[agent] = {}
        for game, by_seed in sorted(grouped[agent].items()):
            seeds = sorted(by_seed)
            raw = [by_seed[s].final_score for s in seeds]
            hns_vals = [
                record_hns(game, x, by_seed[s].final.get("hns")) for s, x in zip(seeds, raw)
            ]
            hns = None if any(h is None for h in hns_vals) else [float(h) for h in hns_vals]  # type: ignore[arg-type]
            per_game[agent][game] = GameStats(agent, game, seeds, raw, hns, "runs")
    return per_game


def _add_published_per_game(
    compare: Sequence[str],
    games: list[str],
    per_game: dict[str, dict[str, GameStats]],
    notes: list[str],
) -> list[str]:
    """Add the ``--compare`` methods with published per-game scores to ``per_game`` as agents
    (``DER (published)``), for the report's games they have; returns their labels."""
    methods = {name_key(m): m for m in published_per_game_methods()}
    added: list[str] = []
    for name in compare:
        if name_key(name) not in methods:
            continue
        method = methods[name_key(name)]
        scores = published_per_game(method)
        label = f"{method} (published)"
        have = [g for g in games if g in scores]
        if not have:
            notes.append(
                f"{method}: no published score for any game in this report (it has scores for "
                f"{len(scores)} games)"
            )
            continue
        if method in DOPAMINE_BASELINES:
            notes.append(f"{label}: {DOPAMINE_BASELINES_NOTE}")
        per_game[label] = {
            g: GameStats(
                label, g, [0], [scores[g]], [float(human_normalized_score(g, scores[g]))],
                "published",
            )
            for g in have
        }  # fmt: skip
        added.append(label)
    return added


def _published_aggregate_rows(compare: Sequence[str]) -> list[dict[str, Any]]:
    """The published aggregates of the ``--compare`` names that have them, in their order."""
    names = {name_key(n): n for n in published_aggregate_names()}
    rows: list[dict[str, Any]] = []
    for name in compare:
        if name_key(name) in names:
            rows.extend(published_aggregates(names[name_key(name)]))
    return rows


def _aggregate(
    per_game: dict[str, dict[str, GameStats]],
    agents: list[str],
    games: list[str],
    reps: int,
    confidence: float,
    seed: int,
    notes: list[str],
) -> _Aggregates:
    """Aggregates over HNS: a [runs, games] matrix per agent, over the ``games`` it has HNS for."""
    out = _Aggregates()
    no_ref = sorted({g for a in per_game for g, s in per_game[a].items() if s.hns is None})
    if no_ref:
        notes.append(
            f"no human/random reference scores (so no HNS; left out of the aggregates): "
            f"{', '.join(no_ref)}"
        )
    for agent in agents:
        have = [g for g in games if g in per_game[agent] and per_game[agent][g].hns is not None]
        if not have:
            continue
        counts = [per_game[agent][g].n for g in have]
        k = min(counts)
        if k != max(counts):
            notes.append(
                f"{agent}: games have unequal seed counts ({k} to {max(counts)}); the aggregates "
                f"use the {k} lowest seeds of every game (a [runs, games] matrix)"
            )
        out.inputs[agent] = np.array([per_game[agent][g].hns[:k] for g in have]).T  # type: ignore[index]
        out.games[agent] = have
        out.runs[agent] = k
        if len(have) < len(games):
            not_run = [g for g in games if g not in per_game[agent]]
            no_hns = [g for g in games if g in per_game[agent] and g not in have]
            why = ([f"no runs of: {', '.join(not_run)}"] if not_run else []) + (
                [f"no HNS for: {', '.join(no_hns)}"] if no_hns else []
            )
            notes.append(
                f"{agent}: aggregated over {len(have)} of {len(games)} games "
                f"({'; '.join(why)}); not directly comparable with the others"
            )
    out.metrics = aggregate_metrics_with_ci(out.inputs, reps=reps, confidence=confidence, seed=seed)
    return out


def _der_rows(
    runs: list[RunResult], labels: dict[int, str], compare: Sequence[str]
) -> list[tuple[str, str, int, str | None, str]]:
    """With ``--compare DER``: each run's label, game, seed, preset and DER settings."""
    if not any(name_key(c) == name_key("DER") for c in compare):
        return []
    return [
        (labels[id(r)], r.game, r.seed, r.preset, der_settings(r.preset))
        for r in sorted(runs, key=lambda r: (labels[id(r)], r.game, r.seed))
    ]
