"""Aggregate metrics (Agarwal et al. 2021 / rliable definitions), bootstrap CIs, profiles."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
from scipy import stats

from distrl_agents.evaluation.aggregates import (
    METRICS,
    aggregate_metrics,
    aggregate_metrics_with_ci,
    bootstrap_distribution,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)
from distrl_agents.evaluation.benchmarks import published_run_methods, published_runs

# [runs=2, games=4]; sorted flat scores: 0 1 2 3 4 5 10 100.
HAND = np.array([[0.0, 1.0, 2.0, 10.0], [3.0, 4.0, 5.0, 100.0]])


def naive_iqm(scores: np.ndarray) -> float:
    """Sort and slice: drop floor(n/4) scores from each end (what trim_mean(.., 0.25) does)."""
    flat = np.sort(np.asarray(scores, dtype=float).reshape(-1))
    k = int(0.25 * flat.size)
    return float(flat[k : flat.size - k].mean())


def fractional_iqm(scores: np.ndarray) -> float:
    """Mean of the middle 50% of the empirical distribution, boundary scores weighted by the
    fraction of their 1/n mass that lies inside [25%, 75%]."""
    flat = np.sort(np.asarray(scores, dtype=float).reshape(-1))
    n = flat.size
    lo_edges, hi_edges = np.arange(n) / n, np.arange(1, n + 1) / n
    weights = np.clip(np.minimum(hi_edges, 0.75) - np.maximum(lo_edges, 0.25), 0.0, None)
    return float((weights * flat).sum() / weights.sum())


# ------------------------------------------------------------------------------ point metrics


def test_hand_case() -> None:
    assert iqm(HAND) == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert mean(HAND) == pytest.approx(125 / 8)
    # per-game means 1.5 2.5 3.5 55 -> median 3.0
    assert median(HAND) == pytest.approx(3.0)
    assert optimality_gap(HAND) == pytest.approx(1 / 8)  # only the 0 falls short of 1, by 1
    assert optimality_gap(HAND, gamma=4.0) == pytest.approx((4 + 3 + 2 + 0 + 1) / 8)


def test_median_is_over_per_game_means_not_all_scores() -> None:
    scores = np.array([[0.0, 1.0, 2.0], [6.0, 1.0, 2.0]])
    assert median(scores) == pytest.approx(2.0)  # per-game means 3, 1, 2
    assert float(np.median(scores)) == pytest.approx(1.5)  # the pooled median differs


def test_mean_equals_flattened_mean() -> None:
    scores = np.random.default_rng(1).normal(size=(7, 13))
    assert mean(scores) == pytest.approx(scores.mean())


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (2, 2), (3, 5), (5, 57), (4, 26), (10, 7)])
def test_iqm_against_naive(shape: tuple[int, int]) -> None:
    scores = np.random.default_rng(shape[0] * 100 + shape[1]).standard_cauchy(size=shape)
    assert iqm(scores) == pytest.approx(naive_iqm(scores), rel=1e-12, abs=1e-12)
    assert iqm(scores) == pytest.approx(stats.trim_mean(scores.reshape(-1), 0.25))
    if scores.size % 4 == 0:
        # With n divisible by 4 trim_mean cuts exactly the outer quarters.
        assert iqm(scores) == pytest.approx(fractional_iqm(scores), rel=1e-12, abs=1e-12)


def test_iqm_is_robust_to_outliers() -> None:
    scores = np.ones((4, 10))
    scores[0, 0] = 1e9
    assert iqm(scores) == pytest.approx(1.0)
    assert mean(scores) > 1e6


@pytest.mark.parametrize("name", list(METRICS))
def test_metrics_are_batched_over_leading_dims(name: str) -> None:
    fn = METRICS[name]
    batch = np.random.default_rng(2).normal(size=(6, 3, 5, 4))
    out = np.asarray(fn(batch))
    assert out.shape == (6, 3)
    expected = np.array([[fn(batch[i, j]) for j in range(3)] for i in range(6)])
    np.testing.assert_allclose(out, expected)


def test_aggregate_metrics_array_and_dict() -> None:
    agg = aggregate_metrics(HAND)
    assert list(agg) == ["median", "iqm", "mean", "optimality_gap"]
    assert agg["iqm"] == pytest.approx(3.5)
    both = aggregate_metrics({"a": HAND, "b": HAND + 1})
    assert both["b"]["mean"] == pytest.approx(agg["mean"] + 1)


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), np.zeros((0, 3)), np.array([[1.0, np.nan]])])
def test_bad_inputs_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        iqm(bad)


# ------------------------------------------------------------------------------ bootstrap


def test_bootstrap_interval_contains_point_and_is_seeded() -> None:
    scores = np.random.default_rng(3).normal(1.0, 0.5, size=(5, 20))
    for name, fn in METRICS.items():
        point, low, high = stratified_bootstrap_ci(scores, fn, reps=1000, seed=0)
        assert point == pytest.approx(float(fn(scores)))
        assert low <= point <= high, name
        assert low < high, name
    assert stratified_bootstrap_ci(scores, iqm, reps=300, seed=7) == stratified_bootstrap_ci(
        scores, iqm, reps=300, seed=7
    )
    assert stratified_bootstrap_ci(scores, iqm, reps=300, seed=7) != stratified_bootstrap_ci(
        scores, iqm, reps=300, seed=8
    )


def test_bootstrap_interval_shrinks_with_more_runs() -> None:
    rng = np.random.default_rng(4)
    game_means = rng.uniform(0, 2, size=10)
    few = game_means + rng.normal(0, 1, size=(3, 10))
    many = game_means + rng.normal(0, 1, size=(60, 10))
    for fn in (iqm, mean):
        _, lo_f, hi_f = stratified_bootstrap_ci(few, fn, reps=1000, seed=0)
        _, lo_m, hi_m = stratified_bootstrap_ci(many, fn, reps=1000, seed=0)
        assert hi_m - lo_m < 0.5 * (hi_f - lo_f)


def test_bootstrap_is_stratified_by_game() -> None:
    # Every run of game g scored g: resampling runs within a game can never change any score,
    # so every resample equals the data (a pooled bootstrap would mix games).
    scores = np.tile(np.arange(6, dtype=float), (4, 1))
    boot = bootstrap_distribution(scores, mean, reps=500, seed=0)
    np.testing.assert_allclose(boot, scores.mean())
    point, low, high = stratified_bootstrap_ci(scores, median, reps=500)
    assert point == low == high == pytest.approx(2.5)


def test_single_run_gives_degenerate_interval() -> None:
    scores = np.array([[0.1, 0.5, 2.0]])
    point, low, high = stratified_bootstrap_ci(scores, iqm, reps=200)
    assert point == pytest.approx(low) and point == pytest.approx(high)


def test_non_batched_metric_falls_back_to_per_resample_calls() -> None:
    scores = np.random.default_rng(5).normal(size=(4, 6))

    def scalar_only_mean(x: np.ndarray) -> float:
        return float(np.mean(x))  # collapses any leading dims: not batch-aware

    a = bootstrap_distribution(scores, scalar_only_mean, reps=300, seed=1)
    b = bootstrap_distribution(scores, mean, reps=300, seed=1)
    np.testing.assert_allclose(a, b)


def test_bootstrap_distribution_matches_naive_loop() -> None:
    scores = np.random.default_rng(6).normal(size=(5, 3))
    reps = 50
    rng = np.random.default_rng(9)
    naive: list[float] = []
    for _ in range(reps):
        idx = rng.integers(0, 5, size=(5, 3))
        resampled = np.stack([scores[idx[:, g], g] for g in range(3)], axis=1)
        naive.append(float(iqm(resampled)))
    np.testing.assert_allclose(
        bootstrap_distribution(scores, iqm, reps=reps, seed=9), np.asarray(naive)
    )


def test_dict_of_agents() -> None:
    rng = np.random.default_rng(7)
    scores = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5, 4))}
    cis = stratified_bootstrap_ci(scores, iqm, reps=200)
    assert set(cis) == {"a", "b"} and all(len(v) == 3 for v in cis.values())
    full = aggregate_metrics_with_ci(scores, reps=200)
    assert set(full["a"]) == set(METRICS)
    assert full["a"]["iqm"] == pytest.approx(cis["a"])


def test_bad_confidence_raises() -> None:
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci(HAND, iqm, confidence=95)


# ------------------------------------------------------------------------------ profiles


def test_performance_profile_hand_case() -> None:
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    taus = [-1.0, 0.0, 0.5, 1.0, 2.5, 3.0]
    profile, low, high = performance_profile(scores, taus, reps=500, seed=0)
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.75, 0.5, 0.25, 0.0])
    assert np.all(low <= profile + 1e-12) and np.all(profile <= high + 1e-12)
    # Below every score / above every score nothing can vary.
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0
    p0, l0, h0 = performance_profile(scores, taus, reps=0)
    np.testing.assert_allclose(p0, profile)
    np.testing.assert_allclose(l0, profile)
    np.testing.assert_allclose(h0, profile)


def test_performance_profile_dict_and_monotone() -> None:
    rng = np.random.default_rng(8)
    taus = np.linspace(-3, 3, 31)
    out = performance_profile({"x": rng.normal(size=(5, 10))}, taus, reps=100)
    profile, low, high = out["x"]
    assert profile.shape == low.shape == high.shape == (31,)
    assert np.all(np.diff(profile) <= 0)


# ------------------------------------------------------------------ probability of improvement


def naive_probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """The definition written out: per game, S(x_i, y_j) over every pair of runs, then the mean
    over games."""
    per_game = []
    for m in range(x.shape[1]):
        total = 0.0
        for xi in x[:, m]:
            for yj in y[:, m]:
                total += 1.0 if xi > yj else 0.5 if xi == yj else 0.0
        per_game.append(total / (x.shape[0] * y.shape[0]))
    return float(np.mean(per_game))


def test_probability_of_improvement_hand_cases() -> None:
    x = np.array([[1.0, 5.0], [2.0, 5.0]])
    assert probability_of_improvement(x, x - 10) == 1.0  # X always above
    assert probability_of_improvement(x - 10, x) == 0.0
    assert probability_of_improvement(np.ones((3, 4)), np.ones((5, 4))) == 0.5  # all ties
    # 2 runs x 2 runs, 2 games.
    # game 0: x = {1, 3}, y = {2, 3}: pairs (1,2) 0, (1,3) 0, (3,2) 1, (3,3) 1/2 -> 1.5 / 4
    # game 1: x = {4, 0}, y = {1, 1}: pairs (4,1) 1, (4,1) 1, (0,1) 0, (0,1) 0 -> 2 / 4
    x = np.array([[1.0, 4.0], [3.0, 0.0]])
    y = np.array([[2.0, 1.0], [3.0, 1.0]])
    assert probability_of_improvement(x, y) == pytest.approx((1.5 / 4 + 2 / 4) / 2)
    # P(X > Y) + P(Y > X) = 1: ties count half to each.
    assert probability_of_improvement(y, x) == pytest.approx(1 - (1.5 / 4 + 2 / 4) / 2)


@pytest.mark.parametrize(("n", "k", "games"), [(1, 1, 1), (1, 7, 3), (4, 6, 5), (10, 3, 2)])
def test_probability_of_improvement_against_naive(n: int, k: int, games: int) -> None:
    rng = np.random.default_rng(n * 100 + k * 10 + games)
    # Integer scores: plenty of ties.
    x = rng.integers(0, 4, size=(n, games)).astype(float)
    y = rng.integers(0, 4, size=(k, games)).astype(float)
    assert probability_of_improvement(x, y) == pytest.approx(naive_probability_of_improvement(x, y))


def test_probability_of_improvement_is_batched_and_checks_games() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 6, 5))
    batched = probability_of_improvement(x, y)
    assert isinstance(batched, np.ndarray) and batched.shape == (3,)
    for b in range(3):
        assert batched[b] == pytest.approx(naive_probability_of_improvement(x[b], y[b]))
    with pytest.raises(ValueError, match="same games"):
        probability_of_improvement(np.zeros((2, 3)), np.zeros((2, 4)))


def test_probability_of_improvement_ci_brackets_the_point_and_is_seeded() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(0.3, 1.0, size=(5, 8))
    y = rng.normal(0.0, 1.0, size=(20, 8))
    point, low, high = probability_of_improvement_ci(x, y, reps=500, seed=0)
    assert point == pytest.approx(naive_probability_of_improvement(x, y))
    assert 0.0 <= low <= point <= high <= 1.0 and low < high
    assert probability_of_improvement_ci(x, y, reps=200, seed=3) == probability_of_improvement_ci(
        x, y, reps=200, seed=3
    )
    # Every run of a game the same score: resampling runs within games changes nothing.
    same_x, same_y = np.tile([1.0, 2.0, 3.0], (4, 1)), np.tile([0.0, 2.0, 5.0], (6, 1))
    assert probability_of_improvement_ci(same_x, same_y, reps=200) == (0.5, 0.5, 0.5)


def test_probability_of_improvement_ci_resamples_both_within_games() -> None:
    # Against a naive loop with the same draws: X's indices, then Y's, per resample chunk.
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    reps, draws = 40, np.random.default_rng(21)
    xi = draws.integers(0, 3, size=(reps, 3, 4))
    yi = draws.integers(0, 5, size=(reps, 5, 4))
    naive = [
        naive_probability_of_improvement(
            np.stack([x[xi[b, :, g], g] for g in range(4)], axis=1),
            np.stack([y[yi[b, :, g], g] for g in range(4)], axis=1),
        )
        for b in range(reps)
    ]
    _, low, high = probability_of_improvement_ci(x, y, reps=reps, seed=21)
    expected_low, expected_high = np.percentile(naive, [2.5, 97.5])
    assert (low, high) == pytest.approx((expected_low, expected_high))


# ------------------------------------------------------------------ published per-run data

#: SHA-256 of the files as taken from github.com/eloialonso/iris @ 75e5ab57e8bd (results/data/
#: DrQ(eps).json and SPR.json); atari100k_runs_sources.md.
PUBLISHED_RUNS_SHA256 = {
    "atari100k_runs_drq_eps.json": "a86f9f4243b7eb3f994b6db4c9c87fb698742bfa08e7b06e414be41abf1f0574",
    "atari100k_runs_spr.json": "055133e22ddb1e7154bbb48b6d229e3b064ea374911158f5d5c1a92cd59e2ad3",
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_RUNS_SHA256))
def test_published_run_files_are_the_original_bytes(name: str) -> None:
    data = resources.files("distrl_agents.evaluation").joinpath("data").joinpath(name)
    assert hashlib.sha256(data.read_bytes()).hexdigest() == PUBLISHED_RUNS_SHA256[name]


def test_published_runs_cover_atari100k_with_100_runs_per_game() -> None:
    from distrl_agents.envs.games import ATARI100K

    assert published_run_methods() == ("DrQ(eps)", "SPR")
    for method in published_run_methods():
        runs = published_runs(method)
        assert sorted(runs) == sorted(ATARI100K), method
        assert all(len(v) == 100 for v in runs.values()), method
    assert published_runs("drq_eps") == published_runs("DrQ(eps)")
    # rliable's DrQ(eps) is not the DrQ paper's: its per-game means differ.
    assert np.mean(published_runs("DrQ(eps)")["alien"]) == pytest.approx(865.2, abs=0.05)


def test_published_runs_of_an_unknown_method_name_the_available_ones() -> None:
    from distrl_agents.evaluation.records import ReportError

    with pytest.raises(ReportError, match=r"DrQ\(eps\), SPR"):
        published_runs("DER")
