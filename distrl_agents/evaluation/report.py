"""Evaluation results on disk, and ``distrl-report``: per-game tables, aggregates, plots.

File format (the training loop and ``distrl-eval`` write it with :func:`append_result` and
:func:`write_final_result`):

* ``<run_dir>/evaluations.jsonl`` -- one JSON object per line, one line per evaluation during
  training::

      {"agent": "c51", "game": "breakout", "seed": 0, "protocol": "machado",
       "agent_step": 250000, "frames": 1000000, "episode_returns": [..raw game scores..],
       "mean_return": 12.3, "hns": 0.36, "source": "train"}

* ``<run_dir>/eval_final.json`` (optional) -- one object with the same fields, written by
  ``distrl-eval`` with ``"source": "distrl-eval"``. When present it is the run's final score;
  otherwise the last line of ``evaluations.jsonl`` is.

A run directory is any directory that holds either file; :func:`find_run_dirs` searches
recursively, so a Hydra multirun sweep directory can be passed as is. Runs of one agent that
differ in a setting of their ``config.json`` are labelled apart (``c51 [agent.lr=0.0001]``).

Aggregate statistics follow Agarwal et al. 2021 (rliable); see
:mod:`distrl_agents.evaluation.aggregates`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from distrl_agents.envs.games import ATARI55, ATARI57, ATARI100K
from distrl_agents.evaluation.aggregates import (
    METRIC_NAMES,
    METRICS,
    aggregate_metrics_with_ci,
    performance_profile,
)
from distrl_agents.evaluation.normalization import human_normalized_score

RESULTS_FILE = "evaluations.jsonl"
FINAL_FILE = "eval_final.json"

#: Every field a result record carries (``hns`` may be null: a game without reference scores).
RECORD_FIELDS: tuple[str, ...] = (
    "agent",
    "game",
    "seed",
    "protocol",
    "agent_step",
    "frames",
    "episode_returns",
    "mean_return",
    "hns",
    "source",
)
# What the reader cannot do without (it recomputes mean_return from episode_returns if needed).
_READ_REQUIRED: tuple[str, ...] = ("agent", "game", "seed", "frames")

#: Benchmark game sets by CLI name, and their display names.
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "atari57": ATARI57,
    "atari55": ATARI55,
    "atari100k": ATARI100K,
}
BENCHMARK_NAMES: dict[str, str] = {
    "atari57": "Atari-57",
    "atari55": "Atari-55 (Atari-57 without defender and surround, as rliable)",
    "atari100k": "Atari-100k",
}
# Atari-100k runs last 100k agent steps = 400k frames; longer runs are not Atari-100k runs.
_ATARI100K_MAX_FRAMES = 500_000

_DATA = "data"
_PUBLISHED_PER_GAME = "atari100k_published.csv"

#: The two ways to run data-efficient Rainbow, by experiment preset, for ``--compare DER``. The
#: published DER column is the paper's (van Hasselt et al. 2019), so only ``atari100k`` runs
#: share its settings; ``atari100k_dopamine`` runs match Dopamine's re-implementation.
DER_PRESETS: dict[str, str] = {
    "atari100k": (
        "the DER paper's settings (van Hasselt et al. 2019, Appendix table: n = 20, 5x5/5 "
        "torso with 256 hidden units, noisy nets without epsilon-greedy): the settings of the "
        "published DER scores"
    ),
    "atari100k_dopamine": (
        "Dopamine's DER (labs/atari_100k/configs/DER.gin: n = 10, epsilon 0.01 after a "
        "2,000-step decay, Nature torso with 512 hidden units): not the settings of the "
        "published DER scores, which are the paper's"
    ),
}


def der_settings(preset: str | None) -> str:
    """What a run launched with ``preset`` has in common with the published DER scores."""
    if preset in DER_PRESETS:
        return DER_PRESETS[preset]
    return (
        "neither DER setting (experiment=atari100k is the paper's, experiment=atari100k_dopamine "
        "Dopamine's)"
        if preset
        else "unknown: the run directory has no config.json naming its preset"
    )


_PUBLISHED_AGGREGATES = "published_aggregates.csv"
# Columns of atari100k_published.csv that are not methods.
_PER_GAME_NON_METHODS = ("game", "random", "human")


class ReportError(ValueError):
    """A user-facing problem with the inputs of a report (one clear message, no traceback)."""


class EmptyRunError(ReportError):
    """A run directory whose evaluations.jsonl holds no record yet (a run that just started)."""


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _check_record(record: Mapping[str, Any]) -> None:
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise ValueError(
            f"result record is missing field(s) {missing}; every record needs {list(RECORD_FIELDS)} "
            "(hns may be None)"
        )


def append_result(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one evaluation record as a JSON line to ``path`` (usually
    ``<run_dir>/evaluations.jsonl``), creating the file and its directory if needed.

    The record must carry every field of :data:`RECORD_FIELDS`; numpy scalars and arrays are
    converted. The line is written with a single ``write`` and flushed, so a crash leaves at most
    one truncated last line, which the reader skips with a warning.
    """
    _check_record(record)
    line = json.dumps(dict(record), default=_jsonable, allow_nan=True) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def write_final_result(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write the final evaluation record (usually ``<run_dir>/eval_final.json``) atomically."""
    _check_record(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(record), default=_jsonable, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One training run: its evaluation history and final score."""

    run_dir: Path
    agent: str
    game: str
    seed: int
    protocol: str | None
    curve: list[dict[str, Any]]  # evaluations.jsonl records, sorted by frames
    final: dict[str, Any]  # eval_final.json, else the last line of evaluations.jsonl
    #: the run's settings from its config.json, flattened (``agent.lr``), without its identity,
    #: schedule, devices and logging (``training.sweep.names_a_run_setting``); {} without one
    settings: dict[str, Any] = field(default_factory=dict)
    #: the experiment preset the run was launched with (config.json ``name``), or None
    preset: str | None = None

    @property
    def final_score(self) -> float:
        return _record_score(self.final)

    @property
    def final_frames(self) -> int:
        return int(self.final.get("frames") or 0)


def _record_score(record: Mapping[str, Any]) -> float:
    value = record.get("mean_return")
    if value is None:
        returns = record.get("episode_returns") or []
        if not returns:
            return math.nan
        value = float(np.mean(returns))
    return float(value)


def find_run_dirs(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every directory under ``dirs`` (recursively, the dirs themselves included) that holds
    ``evaluations.jsonl`` or ``eval_final.json``, sorted and without duplicates."""
    found: set[Path] = set()
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise ReportError(f"not a directory: {str(root)!r}")
        for current, subdirs, files in os.walk(root):
            subdirs.sort()
            if RESULTS_FILE in files or FINAL_FILE in files:
                found.add(Path(current).resolve())
    return sorted(found)


def _parse_record(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in _READ_REQUIRED if obj.get(k) is None]
    if missing:
        raise ReportError(f"{where}: record lacks required field(s) {missing}")
    if obj.get("mean_return") is None and not obj.get("episode_returns"):
        raise ReportError(f"{where}: record has neither mean_return nor episode_returns")
    return obj


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    records = []
    for k, (lineno, line) in enumerate(numbered):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if k == len(numbered) - 1:
                warnings.warn(
                    f"{path}:{lineno}: skipping a truncated last line (was the run killed while "
                    "writing?)",
                    stacklevel=2,
                )
                continue
            raise ReportError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        records.append(_parse_record(obj, f"{path}:{lineno}"))
    return records


def load_run(run_dir: str | os.PathLike[str]) -> RunResult:
    """Read one run directory (see the module docstring for the files)."""
    run_dir = Path(run_dir)
    results, final_path = run_dir / RESULTS_FILE, run_dir / FINAL_FILE
    curve = _read_jsonl(results) if results.exists() else []
    # An evaluation whose step budget ended before any game did has no score (mean_return NaN):
    # it is not a point of the learning curve and cannot be the run's final score.
    curve = [rec for rec in curve if math.isfinite(_record_score(rec))]
    final: dict[str, Any] | None = None
    if final_path.exists():
        try:
            obj = json.loads(final_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ReportError(f"{final_path}: not valid JSON ({e.msg})") from None
        final = _parse_record(obj, str(final_path))
        if not math.isfinite(_record_score(final)):
            final = curve[-1] if curve else None
    elif curve:
        final = curve[-1]
    if final is None:
        raise EmptyRunError(
            f"{run_dir}: no evaluation with a finished game yet in {RESULTS_FILE} / {FINAL_FILE}"
        )
    ident = (str(final["agent"]), str(final["game"]), int(final["seed"]))
    for rec in curve:
        if (str(rec["agent"]), str(rec["game"]), int(rec["seed"])) != ident:
            raise ReportError(
                f"{run_dir}: records of different runs in one directory "
                f"({ident} and {(rec['agent'], rec['game'], rec['seed'])}); "
                "write each run to its own directory"
            )
    curve = sorted(curve, key=lambda r: int(r["frames"]))
    return RunResult(
        run_dir=run_dir,
        agent=ident[0],
        game=ident[1],
        seed=ident[2],
        protocol=final.get("protocol"),
        curve=curve,
        final=final,
        settings=_run_settings(run_dir / "config.json"),
        preset=_run_preset(run_dir / "config.json"),
    )


def _run_preset(path: Path) -> str | None:
    """The ``name`` (experiment preset) in a run's config.json, or None without one."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    name = config.get("name") if isinstance(config, dict) else None
    return str(name) if name is not None else None


def _run_settings(path: Path) -> dict[str, Any]:
    """Flattened settings of a run's config.json (see ``RunResult.settings``)."""
    from distrl_agents.training.sweep import names_a_run_setting

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # no (readable) config: the run is labelled by its records alone
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    if isinstance(config, dict):
        walk(config, "")
    return {k: v for k, v in flat.items() if names_a_run_setting(k) and k != "agent.name"}


def load_runs(dirs: Sequence[str | os.PathLike[str]]) -> list[RunResult]:
    """Every run under ``dirs``; raises :class:`ReportError` when there is none."""
    run_dirs = find_run_dirs(dirs)
    if not run_dirs:
        raise ReportError(
            f"no results found under {', '.join(map(str, dirs))}: looked (recursively) for "
            f"directories holding {RESULTS_FILE} (written during training) or {FINAL_FILE} "
            "(written by distrl-eval)"
        )
    runs = []
    for d in run_dirs:
        try:
            runs.append(load_run(d))
        except EmptyRunError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
    if not runs:
        raise ReportError(
            f"no results found under {', '.join(map(str, dirs))}: the run directories found "
            f"({len(run_dirs)}) hold no evaluation record yet"
        )
    return runs


# --------------------------------------------------------------------------------------------
# Normalisation and benchmark coverage
# --------------------------------------------------------------------------------------------


def _hns(game: str, score: float, fallback: float | None = None) -> float | None:
    """HNS from the Atari-57 reference table; the record's own ``hns`` for other games."""
    try:
        return float(human_normalized_score(game, score))
    except ValueError:
        return None if fallback is None else float(fallback)


@dataclass(frozen=True)
class Coverage:
    """Which benchmark the games of a report cover."""

    games: tuple[str, ...]
    benchmark: str | None  # key of BENCHMARKS when the games are exactly that set
    nearest: str | None  # the benchmark compared against (explicit, or nearest for auto)
    missing: tuple[str, ...]  # games of `nearest` not in the report
    extra: tuple[str, ...]  # games in the report that are not in `nearest`

    def describe(self) -> str:
        n = len(self.games)
        if self.benchmark is not None:
            return f"{BENCHMARK_NAMES[self.benchmark]}: all {n} games"
        head = f"custom: {n} game{'s' if n != 1 else ''}"
        if self.nearest is None:
            return head + " (no benchmark game among them)"
        total = len(BENCHMARKS[self.nearest])
        text = (
            f"{head} (benchmark: {BENCHMARK_NAMES[self.nearest]}; "
            f"{len(self.missing)} of its {total} games missing: {', '.join(self.missing)}"
        )
        if self.extra:
            text += f"; not in it: {', '.join(self.extra)}"
        return text + ")"


def normalize_benchmark_name(name: str) -> str:
    """``"Atari-100k"`` / ``"atari100k"`` / ``"auto"`` -> key; :class:`ReportError` otherwise."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key == "auto" or key in BENCHMARKS:
        return key
    raise ReportError(f"unknown benchmark {name!r}; choose one of: auto, {', '.join(BENCHMARKS)}")


def benchmark_coverage(
    games: Iterable[str], benchmark: str = "auto", max_frames: int | None = None
) -> Coverage:
    """Say which benchmark ``games`` cover.

    ``benchmark="auto"``: an exact match names that set; otherwise the nearest set is the one
    sharing the most games, ties broken by fewest missing games -- except that Atari-100k is not
    considered for runs longer than 500k frames (it is a 400k-frame benchmark). An explicit
    benchmark is compared against as given.
    """
    key = normalize_benchmark_name(benchmark)
    present = tuple(sorted(set(games)))
    if key != "auto":
        bench = BENCHMARKS[key]
        missing = tuple(g for g in bench if g not in present)
        extra = tuple(g for g in present if g not in bench)
        exact = key if not missing and not extra else None
        return Coverage(present, exact, key, missing, extra)
    for name, bench in BENCHMARKS.items():
        if set(bench) == set(present):
            return Coverage(present, name, name, (), ())
    candidates = [
        name
        for name in BENCHMARKS
        if not (
            name == "atari100k" and max_frames is not None and max_frames > _ATARI100K_MAX_FRAMES
        )
    ]
    best = max(
        candidates,
        key=lambda n: (len(set(BENCHMARKS[n]) & set(present)), -len(BENCHMARKS[n])),
    )
    if not set(BENCHMARKS[best]) & set(present):
        return Coverage(present, None, None, (), present)
    bench = BENCHMARKS[best]
    return Coverage(
        present,
        None,
        best,
        tuple(g for g in bench if g not in present),
        tuple(g for g in present if g not in bench),
    )


# --------------------------------------------------------------------------------------------
# Published scores (package data)
# --------------------------------------------------------------------------------------------


def _read_data_csv(name: str) -> list[dict[str, str]]:
    data_file = resources.files("distrl_agents.evaluation").joinpath(_DATA).joinpath(name)
    text = data_file.read_text("utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def published_per_game_methods() -> tuple[str, ...]:
    """Methods with published per-game Atari-100k scores (DER, SimPLe, OTRainbow, CURL, ...)."""
    rows = _read_data_csv(_PUBLISHED_PER_GAME)
    return tuple(c for c in rows[0] if c not in _PER_GAME_NON_METHODS)


def published_per_game(method: str) -> dict[str, float]:
    """``{game: raw score}`` published for ``method`` on Atari-100k (one number per game).

    Source: the header comments of ``distrl_agents/evaluation/data/atari100k_published.csv``.
    """
    rows = _read_data_csv(_PUBLISHED_PER_GAME)
    by_key = {_key(c): c for c in rows[0] if c not in _PER_GAME_NON_METHODS}
    if _key(method) not in by_key:
        raise ReportError(
            f"no published per-game scores for {method!r}; available: {', '.join(by_key.values())}"
        )
    column = by_key[_key(method)]
    return {r["game"]: float(r[column]) for r in rows if r[column] not in ("", None)}


def published_aggregates(algorithm: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``published_aggregates.csv`` that carry numbers (mean/median HNS in percent),
    optionally only those of one algorithm (matched ignoring case and punctuation)."""
    out = []
    for row in _read_data_csv(_PUBLISHED_AGGREGATES):
        if algorithm is not None and _key(row["algorithm"]) != _key(algorithm):
            continue
        if not row["mean_hns_pct"] and not row["median_hns_pct"]:
            continue
        out.append(dict(row))
    return out


def _published_aggregate_names() -> list[str]:
    return sorted({r["algorithm"] for r in published_aggregates()})


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


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


def _curve_stats(
    runs: list[RunResult], use_hns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    by_frames: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        for rec in r.curve or [r.final]:
            score = _record_score(rec)
            y = _hns(r.game, score, rec.get("hns")) if use_hns else score
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


def build_report(
    dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    benchmark: str = "auto",
    compare: Sequence[str] = (),
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    plots: bool = True,
) -> Report:
    """Compute the report for the runs under ``dirs`` and write it to ``out`` (default
    ``<dirs[0]>/report``). Raises :class:`ReportError` for user-facing problems."""
    if not dirs:
        raise ReportError("give at least one results directory")
    if reps < 1:
        raise ReportError(f"--reps must be >= 1, got {reps}")
    bench_key = normalize_benchmark_name(benchmark)
    # Validate --compare names before the (slower) work.
    per_game_methods = {_key(m): m for m in published_per_game_methods()}
    agg_names = {_key(n): n for n in _published_aggregate_names()}
    unknown = [c for c in compare if _key(c) not in per_game_methods and _key(c) not in agg_names]
    if unknown:
        raise ReportError(
            f"unknown --compare name(s) {unknown}. Published per-game scores (Atari-100k): "
            f"{', '.join(per_game_methods.values())}. Published aggregates: "
            f"{', '.join(agg_names.values())}"
        )

    runs = load_runs(dirs)
    notes: list[str] = []
    labels = _label_runs(runs)

    # agent -> game -> seed -> run; duplicates keep the longest run.
    grouped: dict[str, dict[str, dict[int, RunResult]]] = defaultdict(lambda: defaultdict(dict))
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

    max_frames = max(r.final_frames for r in runs)
    all_games = sorted({g for per_game in grouped.values() for g in per_game})
    coverage = benchmark_coverage(all_games, bench_key, max_frames=max_frames)
    if bench_key != "auto" and coverage.extra:
        notes.append(
            f"games outside {BENCHMARK_NAMES[bench_key]} are listed per game but left out of the "
            f"aggregates: {', '.join(coverage.extra)}"
        )
        agg_game_set = [g for g in all_games if g not in coverage.extra]
    else:
        agg_game_set = all_games

    per_game: dict[str, dict[str, GameStats]] = {}
    run_agents = sorted(grouped)
    for agent in run_agents:
        per_game[agent] = {}
        for game, by_seed in sorted(grouped[agent].items()):
            seeds = sorted(by_seed)
            raw = [by_seed[s].final_score for s in seeds]
            hns_vals = [_hns(game, x, by_seed[s].final.get("hns")) for s, x in zip(seeds, raw)]
            hns = None if any(h is None for h in hns_vals) else [float(h) for h in hns_vals]  # type: ignore[arg-type]
            per_game[agent][game] = GameStats(agent, game, seeds, raw, hns, "runs")

    published_agents: list[str] = []
    published_rows: list[dict[str, Any]] = []
    for name in compare:
        if _key(name) in per_game_methods:
            method = per_game_methods[_key(name)]
            scores = published_per_game(method)
            label = f"{method} (published)"
            games = [g for g in all_games if g in scores]
            if not games:
                notes.append(
                    f"{method}: no published score for any game in this report (published "
                    "per-game scores cover the 26 Atari-100k games only)"
                )
                continue
            per_game[label] = {
                g: GameStats(
                    label,
                    g,
                    [0],
                    [scores[g]],
                    [float(human_normalized_score(g, scores[g]))],
                    "published",
                )
                for g in games
            }
            published_agents.append(label)
        if _key(name) in agg_names:
            published_rows.extend(published_aggregates(agg_names[_key(name)]))

    # Aggregates over HNS: a [runs, games] matrix per agent.
    agg_inputs: dict[str, np.ndarray] = {}
    aggregate_games: dict[str, list[str]] = {}
    aggregate_runs: dict[str, int] = {}
    no_ref = sorted({g for a in per_game for g, s in per_game[a].items() if s.hns is None})
    if no_ref:
        notes.append(
            f"no human/random reference scores (so no HNS; left out of the aggregates): "
            f"{', '.join(no_ref)}"
        )
    for agent in run_agents + published_agents:
        games = [
            g for g in agg_game_set if g in per_game[agent] and per_game[agent][g].hns is not None
        ]
        if not games:
            continue
        counts = [per_game[agent][g].n for g in games]
        k = min(counts)
        if k != max(counts):
            notes.append(
                f"{agent}: games have unequal seed counts ({k} to {max(counts)}); the aggregates "
                f"use the {k} lowest seeds of every game (a [runs, games] matrix)"
            )
        matrix = np.array([per_game[agent][g].hns[:k] for g in games]).T  # type: ignore[index]
        agg_inputs[agent] = matrix
        aggregate_games[agent] = games
        aggregate_runs[agent] = k
        if len(games) < len(agg_game_set):
            lacking = [g for g in agg_game_set if g not in games]
            notes.append(
                f"{agent}: aggregated over {len(games)} of {len(agg_game_set)} games "
                f"(no HNS for: {', '.join(lacking)}); not directly comparable with the others"
            )
    aggregates = aggregate_metrics_with_ci(agg_inputs, reps=reps, confidence=confidence, seed=seed)
    if published_agents:
        notes.append(
            "a published per-game score is one number per game, treated as one run: its "
            "bootstrap interval has zero width and says nothing about its seed variance"
        )

    der_rows: list[tuple[str, str, int, str | None, str]] = []
    if any(_key(c) == _key("DER") for c in compare):
        der_rows = [
            (labels[id(r)], r.game, r.seed, r.preset, der_settings(r.preset))
            for r in sorted(runs, key=lambda r: (labels[id(r)], r.game, r.seed))
        ]

    report = Report(
        der_settings=der_rows,
        runs=runs,
        coverage=coverage,
        agents=run_agents + published_agents,
        per_game=per_game,
        aggregates=aggregates,
        aggregate_games=aggregate_games,
        aggregate_runs=aggregate_runs,
        published_aggregate_rows=published_rows,
        notes=notes,
        reps=reps,
        confidence=confidence,
    )

    out_dir = Path(out) if out is not None else Path(dirs[0]) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        _write_text(out_dir / "per_game.csv", _per_game_csv(report)),
        _write_text(out_dir / "aggregates.csv", _aggregates_csv(report)),
        _write_text(
            out_dir / "aggregates.json", json.dumps(_aggregates_json(report), indent=2) + "\n"
        ),
    ]
    if plots:
        files += _make_plots(report, grouped, labels, agg_inputs, out_dir, seed)
    report.files = files
    report.markdown = _markdown(report, dirs, [f.name for f in files])
    report.files.insert(0, _write_text(out_dir / "report.md", report.markdown))
    return report


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
    pct = round(100 * report.confidence)
    n_final = sum(1 for r in report.runs if r.final.get("source") == "distrl-eval")
    parts = [
        "# distrl-agents evaluation report",
        "",
        f"- Runs: {len(report.runs)} run directories under {', '.join(map(str, dirs))} "
        f"({n_final} with {FINAL_FILE}; the others use the last line of {RESULTS_FILE}).",
        f"- Benchmark coverage: {report.coverage.describe()}.",
        "- HNS = human-normalized score (score - random) / (human - random): 0 = random, "
        "1 = human (Atari-57 reference table, as rliable/MuZero).",
        "",
        "## Per-game scores (final score, mean over seeds)",
        "",
    ]
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
    parts += [
        _md_table(header, rows),
        "",
        "raw: mean ± sample std over n seeds; HNS: mean over seeds.",
        "",
    ]

    parts += [
        f"## Aggregate HNS ({pct}% stratified-bootstrap CIs, {report.reps} resamples)",
        "",
    ]
    if report.aggregates:
        header = ["agent", "games", "runs/game"] + [METRIC_NAMES[m] for m in METRICS]
        rows = []
        for agent, metrics in report.aggregates.items():
            row = [
                agent,
                str(len(report.aggregate_games[agent])),
                str(report.aggregate_runs[agent]),
            ]
            for m in METRICS:
                p, lo, hi = metrics[m]
                row.append(f"{_fmt(p)} [{_fmt(lo)}, {_fmt(hi)}]")
            rows.append(row)
        parts += [
            _md_table(header, rows),
            "",
            "Median and mean: over games of the per-game mean over runs; IQM: mean of the middle "
            "50% of all run x game scores; optimality gap: mean of max(1 - HNS, 0), lower is "
            "better (Agarwal et al. 2021).",
            "",
        ]
    else:
        parts += ["No game with human/random reference scores: no HNS aggregates.", ""]

    if report.published_aggregate_rows:
        parts += [
            "## Published aggregates (from the literature, not recomputed from these runs)",
            "",
        ]
        rows = []
        for r in report.published_aggregate_rows:
            mean = float(r["mean_hns_pct"]) / 100 if r["mean_hns_pct"] else None
            med = float(r["median_hns_pct"]) / 100 if r["median_hns_pct"] else None
            rows.append(
                [r["algorithm"], _fmt(med), _fmt(mean), r["n_games"], r["frames"],
                 r["protocol"], r["value_type"]]
            )  # fmt: skip
        parts += [
            _md_table(
                [
                    "algorithm",
                    "median HNS",
                    "mean HNS",
                    "games",
                    "frames",
                    "protocol",
                    "how obtained",
                ],
                rows,
            ),
            "",
            "Sources: distrl_agents/evaluation/data/published_aggregates.csv (per-row source "
            "column). These cover 54-57 games at 200M frames; compare only like with like.",
            "",
        ]
    if report.der_settings:
        parts += [
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
    if report.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    parts += ["## Files", ""] + [f"- {f}" for f in ["report.md", *files]] + [""]
    return "\n".join(parts)


def _make_plots(
    report: Report,
    grouped: Mapping[str, Mapping[str, Mapping[int, RunResult]]],
    labels: Mapping[int, str],
    agg_inputs: Mapping[str, np.ndarray],
    out_dir: Path,
    seed: int,
) -> list[Path]:
    from distrl_agents.evaluation import plots

    files: list[Path] = []
    curves: dict[str, dict[str, Any]] = {}
    ylabels: dict[str, str] = {}
    for agent, by_game in grouped.items():
        curves[agent] = {}
        for game, by_seed in by_game.items():
            use_hns = report.per_game[agent][game].hns is not None
            ylabels[game] = "HNS" if use_hns else "raw score"
            curves[agent][game] = _curve_stats(list(by_seed.values()), use_hns)
    files += plots.plot_learning_curves(curves, ylabels, out_dir / "learning_curves")
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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distrl-report",
        description=(
            "Per-game tables, aggregate human-normalized scores (median, IQM, mean, optimality "
            "gap with stratified-bootstrap CIs, Agarwal et al. 2021) and plots for the runs under "
            f"the given directories (any directory holding {RESULTS_FILE} or {FINAL_FILE}, "
            "searched recursively)."
        ),
    )
    p.add_argument("dirs", nargs="+", help="run, sweep or output directories to search")
    p.add_argument("--out", default=None, help="output directory (default: <first dir>/report)")
    p.add_argument(
        "--benchmark",
        default="auto",
        help="game set to report coverage against: atari57, atari55, atari100k or auto "
        "(default; an explicit set also restricts the aggregates to its games)",
    )
    p.add_argument(
        "--compare",
        default="",
        help="comma-separated published results to add, e.g. DER,SPR (Atari-100k per-game "
        "scores, shown as extra agents) or C51,IQN (published 200M-frame aggregates); with DER "
        "the report also says which DER settings each run used (experiment=atari100k: the "
        "paper's; atari100k_dopamine: Dopamine's)",
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG figures")
    return p


def report_main(argv: list[str] | None = None) -> int:
    """Entry point of ``distrl-report``; returns the process exit status."""
    args = _parser().parse_args(argv)
    compare = [c.strip() for c in args.compare.split(",") if c.strip()]

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"distrl-report: warning: {message}", file=sys.stderr)

    try:
        if not 0.0 < args.confidence < 1.0:
            raise ReportError(f"--confidence must be in (0, 1), got {args.confidence}")
        with warnings.catch_warnings():
            warnings.showwarning = show  # one plain line per warning on the command line
            report = build_report(
                args.dirs,
                out=args.out,
                benchmark=args.benchmark,
                compare=compare,
                reps=args.reps,
                confidence=args.confidence,
                seed=args.seed,
                plots=not args.no_plots,
            )
    except ReportError as e:
        print(f"distrl-report: error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    print(f"Wrote {len(report.files)} files to {report.files[0].parent}")
    return 0


__all__ = [
    "BENCHMARKS",
    "FINAL_FILE",
    "RECORD_FIELDS",
    "RESULTS_FILE",
    "Coverage",
    "EmptyRunError",
    "Report",
    "ReportError",
    "RunResult",
    "append_result",
    "benchmark_coverage",
    "build_report",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "published_aggregates",
    "published_per_game",
    "published_per_game_methods",
    "report_main",
    "write_final_result",
]
