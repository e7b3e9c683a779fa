"""Benchmark game sets, which of them a report's games cover, and published scores to compare
with (package data in ``distrl_agents/evaluation/data``)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from distrl_agents.envs.games import ATARI55, ATARI57, ATARI100K
from distrl_agents.evaluation.records import ReportError

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_NAMES",
    "DER_PRESETS",
    "DOPAMINE_BASELINES",
    "DOPAMINE_BASELINES_NOTE",
    "Coverage",
    "atari100k_methods",
    "benchmark_coverage",
    "der_settings",
    "name_key",
    "normalize_benchmark_name",
    "published_aggregate_names",
    "published_aggregates",
    "published_per_game",
    "published_per_game_methods",
    "published_run_methods",
    "published_runs",
]

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
_DOPAMINE_PER_GAME = "dopamine_baselines_final_pergame.csv"
#: Published Atari-100k methods with per-run scores (100 runs per game; Agarwal et al. 2021,
#: rliable) -> their file in ``data`` (sources, commit and SHA-256: atari100k_runs_sources.md).
_PUBLISHED_RUNS: dict[str, str] = {
    "DrQ(eps)": "atari100k_runs_drq_eps.json",
    "SPR": "atari100k_runs_spr.json",
}

#: ``--compare`` names of Dopamine's published per-game baselines -> their column in
#: ``dopamine_baselines_final_pergame.csv`` (the presets that reproduce them: dopamine_c51,
#: dopamine_iqn, dopamine_quantile, ``experiment=dopamine agent=dqn``).
DOPAMINE_BASELINES: dict[str, str] = {
    "Dopamine-C51": "C51",
    "Dopamine-DQN": "DQN",
    "Dopamine-DQN-Adam-MSE": "DQN (Adam + MSE in JAX)",
    "Dopamine-IQN": "IQN",
    "Dopamine-Quantile": "Quantile (JAX)",
    "Dopamine-Rainbow": "Rainbow",
}
DOPAMINE_BASELINES_NOTE = (
    "Dopamine's published baselines are the mean training return (epsilon 0.01) of each agent's "
    "final iteration (49.5M-49.75M agent steps, about 199M frames; sticky actions; mean of 5 "
    "seeds), not evaluation scores"
)

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


def name_key(name: str) -> str:
    """A name as matched on the command line: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def atari100k_methods() -> tuple[str, ...]:
    """Methods with published per-game Atari-100k scores (DER, SimPLe, OTRainbow, CURL, ...)."""
    rows = _read_data_csv(_PUBLISHED_PER_GAME)
    return tuple(c for c in rows[0] if c not in _PER_GAME_NON_METHODS)


def published_per_game_methods() -> tuple[str, ...]:
    """Every ``--compare`` name with published per-game scores: the Atari-100k methods, then
    Dopamine's baselines (:data:`DOPAMINE_BASELINES`)."""
    return atari100k_methods() + tuple(DOPAMINE_BASELINES)


def published_per_game(method: str) -> dict[str, float]:
    """``{game: raw score}`` published for ``method`` (one number per game): an Atari-100k
    method's score at 100k agent steps, or a Dopamine baseline's final training return.

    Sources: the header comments of ``distrl_agents/evaluation/data/atari100k_published.csv``
    and ``dopamine_baselines_final_pergame.csv``.
    """
    dopamine = {name_key(k): v for k, v in DOPAMINE_BASELINES.items()}
    if name_key(method) in dopamine:
        rows, column = _read_data_csv(_DOPAMINE_PER_GAME), dopamine[name_key(method)]
    else:
        rows = _read_data_csv(_PUBLISHED_PER_GAME)
        by_key = {name_key(c): c for c in rows[0] if c not in _PER_GAME_NON_METHODS}
        if name_key(method) not in by_key:
            raise ReportError(
                f"no published per-game scores for {method!r}; available: "
                f"{', '.join(published_per_game_methods())}"
            )
        column = by_key[name_key(method)]
    return {r["game"]: float(r[column]) for r in rows if r[column] not in ("", None)}


def published_run_methods() -> tuple[str, ...]:
    """Atari-100k methods with published per-run scores: ``("DrQ(eps)", "SPR")``. DER has none
    here (rliable's DER runs are not in the source these files were taken from)."""
    return tuple(_PUBLISHED_RUNS)


def _snake_case(camel: str) -> str:
    """rliable's game names to this project's: ``BankHeist`` -> ``bank_heist``,
    ``UpNDown`` -> ``up_n_down``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def published_runs(method: str) -> dict[str, list[float]]:
    """``{game: [final raw score of each run]}`` published for ``method`` (one of
    :func:`published_run_methods`, matched ignoring case and punctuation): the 100 independent
    Atari-100k runs per game of Agarwal et al. 2021 (rliable).

    ``DrQ(eps)`` is DrQ re-run by Agarwal et al. with epsilon-greedy evaluation; its per-game
    means differ from the ``DrQ`` column of :func:`published_per_game` (Kostrikov et al. 2020).
    Sources: ``distrl_agents/evaluation/data/atari100k_runs_sources.md``.
    """
    by_key = {name_key(k): v for k, v in _PUBLISHED_RUNS.items()}
    if name_key(method) not in by_key:
        raise ReportError(
            f"no published per-run scores for {method!r}; available: "
            f"{', '.join(published_run_methods())}"
        )
    data_file = resources.files("distrl_agents.evaluation").joinpath(_DATA)
    raw = json.loads(data_file.joinpath(by_key[name_key(method)]).read_text("utf-8"))
    return {_snake_case(g): [float(x) for x in runs] for g, runs in raw.items()}


def published_aggregates(algorithm: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``published_aggregates.csv`` that carry numbers (mean/median HNS in percent),
    optionally only those of one algorithm (matched ignoring case and punctuation)."""
    out = []
    for row in _read_data_csv(_PUBLISHED_AGGREGATES):
        if algorithm is not None and name_key(row["algorithm"]) != name_key(algorithm):
            continue
        if not row["mean_hns_pct"] and not row["median_hns_pct"]:
            continue
        out.append(dict(row))
    return out


def published_aggregate_names() -> list[str]:
    """Algorithms with published aggregates (``--compare`` names besides per-game methods)."""
    return sorted({r["algorithm"] for r in published_aggregates()})
