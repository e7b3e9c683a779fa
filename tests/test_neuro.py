"""Dopamine-population model (Dabney et al. 2020): convergence, correlation, decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.expectiles import expectiles
from distrl_agents.neuro import (
    CellPopulation,
    StudyConfig,
    VariableMagnitudeTask,
    asymmetries,
    decode_return_distribution,
    learn_values,
    reversal_points,
    run_study,
    simulate_responses,
    wasserstein1,
)


@pytest.fixture(scope="module")
def study():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return run_study(StudyConfig(seed=0))


def test_task_default_and_validation() -> None:
    task = VariableMagnitudeTask()
    assert task.values.tolist() == [0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0]
    assert np.allclose(task.p, 1 / 7)
    assert task.expectiles([0.5])[0] == pytest.approx(task.mean)
    skewed = VariableMagnitudeTask(probs=(0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05))
    assert skewed.mean < task.mean
    with pytest.raises(ValueError, match="probs"):
        VariableMagnitudeTask(probs=(0.5, 0.5))


def test_distributional_cells_converge_to_expectiles() -> None:
    task = VariableMagnitudeTask(probs=(0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05))
    rng = np.random.default_rng(1)
    pop = CellPopulation.distributional(20, rng)
    v, traj = learn_values(pop, task, rng, num_trials=20_000)
    target = task.expectiles(pop.taus)
    assert traj.shape == (20_000, 20)
    np.testing.assert_allclose(v, target, atol=0.25)  # constant steps 0.02: Polyak-averaged
    assert np.corrcoef(v, target)[0, 1] > 0.99
    classical = CellPopulation.classical(20, rng)
    vc, _ = learn_values(classical, task, rng, num_trials=20_000)
    np.testing.assert_allclose(vc, task.mean, atol=0.35)  # all cells learn the mean


def test_reversal_and_asymmetry_noise_free() -> None:
    mags = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])
    rng = np.random.default_rng(0)
    pop = CellPopulation(
        alpha_pos=np.array([0.02, 0.08]), alpha_neg=np.array([0.08, 0.02]), gain=np.ones(2)
    )
    values = np.array([3.0, 7.5])
    resp = simulate_responses(pop, values, mags, rng, trials_per_magnitude=4, noise_sd=0.0)
    rev = reversal_points(mags, resp)
    # Zero of the linear interpolation between the neighbouring magnitudes' mean responses
    # (2.5 -> -0.8, 5 -> +0.8: 3.75; 5 -> -1, 10 -> +4: 6.0): hand-worked, and biased towards the
    # side with the steeper slope, as the paper's interpolation would be.
    np.testing.assert_allclose(rev, [3.75, 6.0], atol=1e-9)
    tau_hat, sp, sn = asymmetries(mags, resp, rev)
    np.testing.assert_allclose(tau_hat, [0.2, 0.8], atol=1e-9)
    np.testing.assert_allclose(sp, [0.4, 1.6])
    np.testing.assert_allclose(sn, [1.6, 0.4])


def test_correlation_positive_for_distributional_absent_for_classical(study) -> None:  # type: ignore[no-untyped-def]
    d, c = study.dist.corr, study.classical.corr
    assert d["pearson_r"] > 0.5 and d["pearson_p"] < 0.05 and d["spearman_p"] < 0.05
    assert c["pearson_p"] > 0.05 and c["spearman_p"] > 0.05
    assert d["n"] == c["n"] == 40
    assert study.expectile_error < 0.25


def test_decoding_recovers_task_distribution(study) -> None:  # type: ignore[no-untyped-def]
    # Stated bounds (µl): from the noisy estimates W1 < 2.5; from the cells' values (oracle) W1 < 1;
    # a point mass at the mean is 5.38 away.
    assert study.w1_decoded < 2.5
    assert study.w1_oracle < 1.0
    assert study.w1_mean_only == pytest.approx(5.38, abs=0.01)
    assert study.decoded.min() >= 0.1 - 1e-9 and study.decoded.max() <= 20.0 + 1e-9


def test_decode_return_distribution_expectile_and_quantile() -> None:
    taus = (torch.arange(15, dtype=torch.float32) + 0.5) / 15
    atoms = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 10.0] * 5)
    e = expectiles(atoms, None, taus)  # [15]
    values = torch.stack([e, e + 3.0]).unsqueeze(0)  # [1, A=2, 15]
    dist = ReturnDistribution(values=values, probs=torch.full_like(values, 1 / 15), taus=taus[None])
    z1 = decode_return_distribution(dist, 1)
    assert z1.shape == (15,)
    assert wasserstein1(z1, np.array([3.0, 4.0, 13.0]), np.array([0.5, 1 / 3, 1 / 6])) < 1.0
    q = decode_return_distribution(dist, 0, kind="quantile", num_samples=30)
    assert q.shape == (30,) and np.all(np.diff(q) >= 0)
    with pytest.raises(ValueError, match="kind"):
        decode_return_distribution(dist, 0, kind="moments")
    with pytest.raises(ValueError, match="out of range"):
        decode_return_distribution(dist, 2)
