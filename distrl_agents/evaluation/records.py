"""Evaluation records on disk: the one place that builds, writes and reads them.

File format (the training loop and ``distrl-eval`` build each record with
:func:`evaluation_record` and write it with :func:`append_result` / :func:`write_final_result`):

* ``<run_dir>/evaluations.jsonl`` -- one JSON object per line, one line per evaluation during
  training::

      {"agent": "c51", "game": "breakout", "seed": 0, "protocol": "machado",
       "agent_step": 250000, "frames": 1000000, "episode_returns": [..raw game scores..],
       "mean_return": 12.3, "hns": 0.36, "source": "train"}

  An evaluation that finished no game (its step budget ran out first) is written with
  ``"games": 0`` and ``"mean_return": null``; the reader skips it with a warning. Every file is
  strict JSON: a NaN or infinity is written as ``null``, never as a bare ``NaN``. When the frame
  cap (``"max_frames_per_game"``) ended some of the games, ``"games_truncated"`` counts them and
  ``"hns_note"`` says that the scores (and the HNS) are those of cut games.

* ``<run_dir>/eval_final.json`` (optional) -- one object with the same fields, written by
  ``distrl-eval`` with ``"source": "distrl-eval"``. When present it is the run's final score;
  otherwise the last line of ``evaluations.jsonl`` is.

A run directory is any directory that holds either file; :func:`find_run_dirs` searches
recursively, so a Hydra multirun sweep directory can be passed as is. A run's settings from its
``config.json`` (:attr:`RunResult.settings`) let the report label apart runs of one agent that
differ in a setting (``c51 [agent.lr=0.0001]``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distrl_agents.evaluation.evaluator import EvalResult
from distrl_agents.evaluation.normalization import human_normalized_score
from distrl_agents.run_settings import names_a_run_setting

__all__ = [
    "FINAL_FILE",
    "RECORD_FIELDS",
    "RESULTS_FILE",
    "EmptyRunError",
    "ReportError",
    "RunResult",
    "append_result",
    "evaluation_record",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "record_hns",
    "record_score",
    "to_json",
    "write_final_result",
]

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


class ReportError(ValueError):
    """A user-facing problem with the inputs of a report (one clear message, no traceback)."""


class EmptyRunError(ReportError):
    """A run directory whose evaluations.jsonl holds no record yet (a run that just started)."""


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def evaluation_record(
    result: EvalResult,
    *,
    agent: str,
    agent_settings: Mapping[str, Any],
    game: str,
    seed: int,
    protocol: str,
    agent_step: int,
    frameskip: int,
    eval_epsilon: float,
    source: str,
    **extra: Any,
) -> dict[str, Any]:
    """The record of one evaluation of a run's agent after ``agent_step`` agent steps.

    ``agent`` is the run's label (``c51+cvar0.25``) and ``agent_settings`` its agent config
    (for ``risk`` and ``risk_param``); ``frameskip`` is that of the run's environment, so that
    ``frames = agent_step * frameskip`` counts the game frames the run trained on. ``extra``
    fields (``eval_index``, ``checkpoint``, ...) come after ``eval_epsilon``; ``source`` (who
    wrote it: ``"train"``, ``"distrl-eval"``) is the last field. Undefined statistics (the mean
    of no game, the standard error of one) are None.
    """
    cut = result.truncated_games
    note = (
        {
            "hns_note": (
                f"{cut} of {result.games} games were cut at the frame cap of "
                f"{result.frame_cap:,} frames: their scores, and so mean_return and hns, are "
                "those of unfinished games"
            )
        }
        if cut
        else {}
    )
    return {
        "agent": agent,
        "risk": agent_settings.get("risk", "neutral"),
        "risk_param": agent_settings.get("risk_param"),
        "game": game,
        "seed": seed,
        "protocol": protocol,
        "agent_step": agent_step,
        "frames": agent_step * frameskip,
        "episode_returns": result.episode_returns,
        "episode_lengths": result.episode_lengths,
        "mean_return": _finite_or_none(result.mean_return),
        "stderr_return": _finite_or_none(result.stderr_return),
        "hns": result.hns,
        "games": result.games,
        "games_truncated": cut,
        "max_frames_per_game": result.frame_cap,
        **note,
        "eval_epsilon": eval_epsilon,
        **extra,
        "source": source,
    }


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float (anywhere inside) replaced by None."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    return value


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (a record, a summary): numpy values and paths converted,
    NaN and infinities written as ``null`` (a bare ``NaN`` is not JSON)."""
    return json.dumps(_strict(value), default=_jsonable, allow_nan=False, indent=indent)


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
    converted, NaN written as null (:func:`to_json`). The line is written with a single ``write`` and flushed, so a crash leaves at most
    one truncated last line, which the reader skips with a warning.
    """
    _check_record(record)
    line = to_json(dict(record)) + "\n"
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
    tmp.write_text(to_json(dict(record), indent=2) + "\n", encoding="utf-8")
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
    #: schedule, devices and logging (:func:`distrl_agents.run_settings.names_a_run_setting`);
    #: {} without one
    settings: dict[str, Any] = field(default_factory=dict)
    #: the experiment preset the run was launched with (config.json ``name``), or None
    preset: str | None = None

    @property
    def final_score(self) -> float:
        return record_score(self.final)

    @property
    def final_frames(self) -> int:
        return int(self.final.get("frames") or 0)


def record_score(record: Mapping[str, Any]) -> float:
    """A record's score: its ``mean_return``, else the mean of its ``episode_returns`` (NaN
    when it has neither: an evaluation that finished no game)."""
    value = record.get("mean_return")
    if value is None:
        returns = record.get("episode_returns") or []
        if not returns:
            return math.nan
        value = float(np.mean(returns))
    return float(value)


def record_hns(game: str, score: float, fallback: float | None = None) -> float | None:
    """The human-normalized score of ``score`` from the Atari-57 reference table; for other
    games the record's own ``hns`` (``fallback``), which may be None."""
    try:
        return float(human_normalized_score(game, score))
    except ValueError:
        return None if fallback is None else float(fallback)


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
    if obj.get("mean_return") is None and not isinstance(obj.get("episode_returns"), list):
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
    # An evaluation whose step budget ended before any game did has no score (mean_return null,
    # NaN in files of older versions): it is not a point of the learning curve and cannot be
    # the run's final score.
    unscored = [rec for rec in curve if not math.isfinite(record_score(rec))]
    if unscored:
        steps = ", ".join(str(rec.get("agent_step", "?")) for rec in unscored)
        warnings.warn(
            f"{run_dir}: {len(unscored)} evaluation(s) in {RESULTS_FILE} finished no game "
            f"(at agent step(s) {steps}): no score, left out of the learning curve",
            stacklevel=2,
        )
    curve = [rec for rec in curve if math.isfinite(record_score(rec))]
    final: dict[str, Any] | None = None
    if final_path.exists():
        try:
            obj = json.loads(final_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ReportError(f"{final_path}: not valid JSON ({e.msg})") from None
        final = _parse_record(obj, str(final_path))
        if not math.isfinite(record_score(final)):
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
        if isinstance(config.get("resolved"), dict):  # the code that trained: not a setting
            config["resolved"].pop("code", None)
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
