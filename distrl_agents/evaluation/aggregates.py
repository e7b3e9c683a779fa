"""Aggregate metrics over games and seeds with stratified-bootstrap confidence intervals.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS; arXiv:2108.13264) and its library rliable (github.com/google-research/rliable,
``rliable/metrics.py`` and ``rliable/library.py``). rliable is not a dependency; the definitions
below are re-implemented and tested against naive versions.

Score arrays are ``[runs, games]`` (rliable's ``[num_runs, num_tasks]``): one row per independent
run (seed), one column per game, usually human-normalized scores. Every metric here also accepts
leading batch dimensions, ``[..., runs, games] -> [...]``, which is how the bootstrap evaluates all
resamples at once.

Functions that take ``scores`` also accept a dict ``{agent: [runs, games] array}`` where noted and
then return a dict with the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np
from scipy import stats

ScoreArray = np.ndarray
Metric = Callable[[np.ndarray], np.ndarray | float]
Interval = tuple[float, float, float]  # (point estimate, lower bound, upper bound)

# Bootstrap resamples are evaluated in chunks of at most this many array elements.
_CHUNK_ELEMENTS = 4_000_000


def _as_scores(scores: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(
            f"scores must be a [runs, games] array (one row per run, one column per game); "
            f"got shape {arr.shape}. For a single game use shape [runs, 1]."
        )
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"scores must have at least one run and one game; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores contain NaN or inf; drop the missing runs or games first")
    return arr


def _scalar_or_array(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


# --------------------------------------------------------------------------------------------
# Point metrics: [..., runs, games] -> [...]
# --------------------------------------------------------------------------------------------


def iqm(scores: np.ndarray) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of all run x game scores.

    rliable ``aggregate_iqm``: ``scipy.stats.trim_mean(scores, proportiontocut=0.25, axis=None)``,
    i.e. over the flattened ``runs * games`` scores, ``floor(0.25 * n)`` scores are cut from each end.
    """
    arr = _as_scores(scores)
    flat = arr.reshape(*arr.shape[:-2], -1)
    return _scalar_or_array(stats.trim_mean(flat, proportiontocut=0.25, axis=-1))


def mean(scores: np.ndarray) -> np.ndarray | float:
    """Mean over games of the per-game mean over runs (rliable ``aggregate_mean``)."""
    arr = _as_scores(scores)
    return _scalar_or_array(arr.mean(axis=-2).mean(axis=-1))


def median(scores: np.ndarray) -> np.ndarray | float:
    """Median over games of the per-game mean over runs (rliable ``aggregate_median``)."""
    arr = _as_scores(scores)
    return _scalar_or_array(np.median(arr.mean(axis=-2), axis=-1))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray | float:
    """Mean shortfall below the target ``gamma``: ``mean(max(gamma - score, 0))``.

    rliable ``aggregate_optimality_gap`` (``gamma - mean(minimum(scores, gamma))``); lower is
    better. With human-normalized scores and ``gamma = 1`` it measures how far below human level
    the agent is, ignoring how far above human level it gets on other games.
    """
    arr = _as_scores(scores)
    return _scalar_or_array(np.maximum(gamma - arr, 0.0).mean(axis=(-2, -1)))


#: The four aggregate metrics of Agarwal et al. 2021 (their Figure 1/5), in display order.
METRICS: dict[str, Metric] = {
    "median": median,
    "iqm": iqm,
    "mean": mean,
    "optimality_gap": optimality_gap,
}

#: Human-readable names for the keys of :data:`METRICS`.
METRIC_NAMES: dict[str, str] = {
    "median": "Median",
    "iqm": "IQM",
    "mean": "Mean",
    "optimality_gap": "Optimality gap",
}


@overload
def aggregate_metrics(scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]: ...
@overload
def aggregate_metrics(scores: np.ndarray) -> dict[str, float]: ...
def aggregate_metrics(
    scores: np.ndarray | Mapping[str, np.ndarray],
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Point estimates of every metric in :data:`METRICS`.

    ``[runs, games]`` array -> ``{"median": .., "iqm": .., "mean": .., "optimality_gap": ..}``;
    dict of arrays -> ``{agent: {...}}``.
    """
    if isinstance(scores, Mapping):
        return {agent: _aggregate_one(s) for agent, s in scores.items()}
    return _aggregate_one(scores)


def _aggregate_one(scores: np.ndarray) -> dict[str, float]:
    arr = _as_scores(scores)
    if arr.ndim != 2:
        raise ValueError(f"aggregate_metrics expects a [runs, games] array; got shape {arr.shape}")
    return {name: float(fn(arr)) for name, fn in METRICS.items()}


# --------------------------------------------------------------------------------------------
# Stratified bootstrap
# --------------------------------------------------------------------------------------------


def stratified_resample_indices(
    runs: int, games: int, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """Run indices ``[reps, runs, games]``: for each game independently, ``runs`` draws with
    replacement from that game's runs (rliable ``StratifiedBootstrap``: strata = games)."""
    return rng.integers(0, runs, size=(reps, runs, games))


def _bootstrap_chunks(
    arr: np.ndarray, reps: int, seed: int | np.random.Generator
) -> Iterator[np.ndarray]:
    """Yield resampled score arrays ``[chunk, runs, games]`` totalling ``reps`` resamples."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    runs, games = arr.shape
    chunk = max(1, _CHUNK_ELEMENTS // (runs * games))
    cols = np.arange(games)
    done = 0
    while done < reps:
        n = min(chunk, reps - done)
        idx = stratified_resample_indices(runs, games, n, rng)  # [n, runs, games]
        yield arr[idx, cols]  # resampled[b, r, g] = arr[idx[b, r, g], g]
        done += n


def bootstrap_distribution(
    scores: np.ndarray,
    metric: Metric,
    reps: int = 2000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """The metric evaluated on ``reps`` stratified-bootstrap resamples of ``scores`` -> ``[reps]``.

    ``metric`` should accept ``[..., runs, games]`` and return ``[...]`` (all metrics in this
    module do); a metric that only handles one ``[runs, games]`` array is detected and called once
    per resample instead.
    """
    arr = _as_scores(scores)
    if arr.ndim != 2:
        raise ValueError(f"expected a [runs, games] array; got shape {arr.shape}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    out: list[np.ndarray] = []
    for resampled in _bootstrap_chunks(arr, reps, seed):
        try:
            values = np.asarray(metric(resampled), dtype=np.float64)
        except (ValueError, TypeError, IndexError):
            values = np.empty(0)
        if values.shape != resampled.shape[:1]:
            # Not batch-aware: evaluate each resample on its own.
            values = np.array([float(metric(r)) for r in resampled])
        out.append(values)
    return np.concatenate(out)


@overload
def stratified_bootstrap_ci(
    scores: Mapping[str, np.ndarray],
    metric: Metric,
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> dict[str, Interval]: ...
@overload
def stratified_bootstrap_ci(
    scores: np.ndarray,
    metric: Metric,
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> Interval: ...
def stratified_bootstrap_ci(
    scores: np.ndarray | Mapping[str, np.ndarray],
    metric: Metric,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval | dict[str, Interval]:
    """Point estimate and percentile stratified-bootstrap confidence interval of ``metric``.

    Runs are resampled with replacement independently within each game (rliable's
    ``StratifiedBootstrap``, strata = games), the metric is evaluated on each of ``reps``
    resamples, and the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    percentiles of those values (the "percentile" method rliable uses by default).

    Returns ``(point, low, high)``; for a dict of agents, ``{agent: (point, low, high)}`` with
    every agent resampled from the same seed.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(scores, Mapping):
        return {agent: _ci_one(s, metric, reps, confidence, seed) for agent, s in scores.items()}
    return _ci_one(scores, metric, reps, confidence, seed)


def _ci_one(
    scores: np.ndarray, metric: Metric, reps: int, confidence: float, seed: int
) -> Interval:
    arr = _as_scores(scores)
    point = float(metric(arr))
    boot = bootstrap_distribution(arr, metric, reps=reps, seed=seed)
    alpha = 1.0 - confidence
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return point, float(low), float(high)


@overload
def aggregate_metrics_with_ci(
    scores: Mapping[str, np.ndarray],
    metrics: Mapping[str, Metric] | None = ...,
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> dict[str, dict[str, Interval]]: ...
@overload
def aggregate_metrics_with_ci(
    scores: np.ndarray,
    metrics: Mapping[str, Metric] | None = ...,
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> dict[str, Interval]: ...
def aggregate_metrics_with_ci(
    scores: np.ndarray | Mapping[str, np.ndarray],
    metrics: Mapping[str, Metric] | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval] | dict[str, dict[str, Interval]]:
    """``{metric: (point, low, high)}`` for every metric (default :data:`METRICS`);
    for a dict of agents, ``{agent: {metric: (point, low, high)}}``."""
    metrics = METRICS if metrics is None else metrics
    if isinstance(scores, Mapping):
        return {
            agent: aggregate_metrics_with_ci(s, metrics, reps, confidence, seed)
            for agent, s in scores.items()
        }
    return {name: _ci_one(scores, fn, reps, confidence, seed) for name, fn in metrics.items()}


# --------------------------------------------------------------------------------------------
# Performance profiles
# --------------------------------------------------------------------------------------------


def _fraction_above(arr: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``[..., runs, games]`` -> ``[..., len(taus)]``: fraction of scores strictly above each tau."""
    flat = np.sort(arr.reshape(*arr.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    if flat.ndim == 1:
        return 1.0 - np.searchsorted(flat, taus, side="right") / n
    # count(score > tau) = n - count(score <= tau); done by comparison, chunked by the caller.
    return (flat[..., None, :] > taus[:, None]).sum(axis=-1) / n


@overload
def performance_profile(
    scores: Mapping[str, np.ndarray],
    taus: np.ndarray | Sequence[float],
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
@overload
def performance_profile(
    scores: np.ndarray,
    taus: np.ndarray | Sequence[float],
    reps: int = ...,
    confidence: float = ...,
    seed: int = ...,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def performance_profile(
    scores: np.ndarray | Mapping[str, np.ndarray],
    taus: np.ndarray | Sequence[float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray] | dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
):
    """Score distribution (performance profile, Agarwal et al. 2021 Sec. 4.1) with bootstrap bands.

    ``profile[i]`` = fraction of all run x game scores strictly greater than ``taus[i]`` (rliable
    ``create_performance_profile`` with ``use_score_distribution=True``). The band is the percentile
    interval over ``reps`` stratified-bootstrap resamples; ``reps=0`` skips it (low = high =
    profile).

    Returns ``(profile, low, high)``, each ``[len(taus)]``; for a dict, ``{agent: (...)}``.
    """
    if isinstance(scores, Mapping):
        return {
            agent: performance_profile(s, taus, reps, confidence, seed)
            for agent, s in scores.items()
        }
    arr = _as_scores(scores)
    if arr.ndim != 2:
        raise ValueError(f"expected a [runs, games] array; got shape {arr.shape}")
    taus_arr = np.asarray(taus, dtype=np.float64).reshape(-1)
    profile = _fraction_above(arr, taus_arr)
    if reps <= 0:
        return profile, profile.copy(), profile.copy()
    # Keep the [chunk, taus, runs*games] comparison within the chunk budget.
    per_rep = arr.size * max(1, taus_arr.size)
    chunk_reps = max(1, _CHUNK_ELEMENTS // per_rep)
    rng = np.random.default_rng(seed)
    boots: list[np.ndarray] = []
    cols = np.arange(arr.shape[1])
    done = 0
    while done < reps:
        n = min(chunk_reps, reps - done)
        idx = stratified_resample_indices(arr.shape[0], arr.shape[1], n, rng)
        boots.append(_fraction_above(arr[idx, cols], taus_arr))
        done += n
    boot = np.concatenate(boots, axis=0)  # [reps, taus]
    alpha = 1.0 - confidence
    low = np.percentile(boot, 100 * alpha / 2, axis=0)
    high = np.percentile(boot, 100 * (1 - alpha / 2), axis=0)
    return profile, low, high


# --------------------------------------------------------------------------------------------
# Probability of improvement
# --------------------------------------------------------------------------------------------


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[-1] != y.shape[-1] or x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            f"x and y must have the same games (last axis) and batch dimensions; got shapes "
            f"{x.shape} and {y.shape} (the number of runs may differ)"
        )


def probability_of_improvement(
    x: np.ndarray | Sequence[Sequence[float]], y: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray | float:
    """Probability that algorithm X beats algorithm Y on a game chosen at random:
    ``[..., N, games]``, ``[..., K, games]`` -> ``[...]``.

    Agarwal et al. 2021 (rliable ``metrics.probability_of_improvement``): the mean over games
    ``m`` of ``P(X_m > Y_m) = 1/(N K) sum_i sum_j S(x_mi, y_mj)``, with ``S = 1`` if
    ``x > y``, ``1/2`` if equal and ``0`` otherwise: the Mann-Whitney U statistic of the two
    samples of runs on game ``m`` divided by ``N K``. X and Y may have different numbers of runs
    but must have the same games, in the same order. Since ``S`` only compares scores of the same
    game, raw and human-normalized scores give the same value.
    """
    xa, ya = _as_scores(x), _as_scores(y)
    _check_pair(xa, ya)
    # S(x, y) = (1 + sign(x - y)) / 2 for every pair of runs: [..., N, K, games].
    s = 0.5 * (1.0 + np.sign(xa[..., :, None, :] - ya[..., None, :, :]))
    return _scalar_or_array(s.mean(axis=(-3, -2)).mean(axis=-1))


def probability_of_improvement_ci(
    x: np.ndarray | Sequence[Sequence[float]],
    y: np.ndarray | Sequence[Sequence[float]],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Interval:
    """``(point, low, high)``: :func:`probability_of_improvement` of X over Y with a percentile
    stratified-bootstrap interval.

    Each resample draws, for every game independently, ``N`` of X's runs and, independently of
    those, ``K`` of Y's runs with replacement (rliable's ``StratifiedIndependentBootstrap``:
    strata = games, the two algorithms resampled independently). With one run of X per game only
    Y's runs vary, so the interval then reflects Y's spread alone.
    """
    xa, ya = _as_scores(x), _as_scores(y)
    if xa.ndim != 2 or ya.ndim != 2:
        raise ValueError(f"expected [runs, games] arrays; got shapes {xa.shape} and {ya.shape}")
    _check_pair(xa, ya)
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    (n, games), k = xa.shape, ya.shape[0]
    cols = np.arange(games)
    # The pairwise comparison holds [chunk, N, K, games] elements.
    chunk = max(1, _CHUNK_ELEMENTS // (n * k * games))
    boots: list[np.ndarray] = []
    done = 0
    while done < reps:
        b = min(chunk, reps - done)
        x_idx = stratified_resample_indices(n, games, b, rng)
        y_idx = stratified_resample_indices(k, games, b, rng)
        boots.append(np.asarray(probability_of_improvement(xa[x_idx, cols], ya[y_idx, cols])))
        done += b
    boot = np.concatenate(boots)
    alpha = 1.0 - confidence
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(probability_of_improvement(xa, ya)), float(low), float(high)


__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "aggregate_metrics",
    "aggregate_metrics_with_ci",
    "bootstrap_distribution",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
    "stratified_resample_indices",
]
