"""Expectile math: loss, exact expectiles, imputation (distrl_agents.expectiles, losses.expectile_loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from distrl_agents.expectiles import expectile_foc_residual, expectiles, impute_samples
from distrl_agents.losses import expectile_loss

LEVELS = (torch.arange(21, dtype=torch.float64) + 0.5) / 21


def _reference_expectile(x: np.ndarray, p: np.ndarray, tau: float) -> float:
    """Naive root of tau E[(X-e)+] = (1-tau) E[(e-X)+] by Brent's method."""

    def foc(e: float) -> float:
        return tau * np.sum(p * np.clip(x - e, 0, None)) - (1 - tau) * np.sum(
            p * np.clip(e - x, 0, None)
        )

    return brentq(foc, x.min() - 1.0, x.max() + 1.0, xtol=1e-13)


def test_expectile_half_is_mean_and_ends_are_min_max() -> None:
    x = torch.tensor([[1.0, 4.0, -2.0, 7.5]], dtype=torch.float64)
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    e = expectiles(x, p, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert e[0, 1].item() == pytest.approx((x * p).sum().item(), abs=1e-12)
    assert e[0, 0].item() == -2.0 and e[0, 2].item() == 7.5


def test_two_point_closed_form() -> None:
    # X in {a, b} w.p. {1-q, q}: e = (tau q b + (1-tau)(1-q) a) / (tau q + (1-tau)(1-q)).
    a, b, q = 0.0, 10.0, 0.5
    taus = torch.tensor([0.1, 0.25, 0.5, 0.9], dtype=torch.float64)
    e = expectiles(torch.tensor([a, b]), torch.tensor([1 - q, q]), taus)
    closed = (taus * q * b + (1 - taus) * (1 - q) * a) / (taus * q + (1 - taus) * (1 - q))
    torch.testing.assert_close(e.double(), closed, atol=1e-5, rtol=0)
    assert e[0].item() == pytest.approx(1.0, abs=1e-5)  # tau = 0.1 of {0, 10}: 1


def test_expectiles_match_naive_root_finder_batched() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 9, generator=g, dtype=torch.float64) * 3
    p = torch.rand(20, 9, generator=g, dtype=torch.float64)
    p = p / p.sum(-1, keepdim=True)
    taus = torch.rand(20, 5, generator=g, dtype=torch.float64)  # per-row levels [B, K]
    got = expectiles(x, p, taus).numpy()
    ref = np.array(
        [
            [_reference_expectile(x[b].numpy(), p[b].numpy(), float(t)) for t in taus[b]]
            for b in range(20)
        ]
    )
    np.testing.assert_allclose(got, ref, atol=1e-9)
    # Zero-weight atoms are ignored; uniform weights by default.
    assert expectiles(
        torch.tensor([0.0, 5.0, 100.0]), torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.5])
    ).item() == (pytest.approx(2.5))
    assert expectiles(torch.tensor([0.0, 5.0]), None, torch.tensor([0.5])).item() == pytest.approx(
        2.5
    )


def test_expectile_loss_matches_naive_and_is_minimised_at_expectiles() -> None:
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 4, generator=g)
    target = torch.randn(3, 6, generator=g)
    taus = torch.tensor([0.1, 0.4, 0.6, 0.95])
    loss = expectile_loss(pred, target, taus)
    naive = torch.zeros(3)
    for b in range(3):
        for k in range(4):
            for j in range(6):
                u = target[b, j] - pred[b, k]
                naive[b] += abs(taus[k] - float(u < 0)) * u**2 / 6
    torch.testing.assert_close(loss, naive)
    assert loss.shape == (3,) and loss.dtype == torch.float32
    # The gradient vanishes at the exact expectiles of the target samples.
    best = expectiles(target, None, taus.expand(3, -1)).requires_grad_(True)
    expectile_loss(best, target, taus).sum().backward()
    assert best.grad is not None and best.grad.abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="taus"):
        expectile_loss(pred, target, torch.rand(5))


def test_foc_residual_zero_at_expectiles() -> None:
    z = torch.tensor([[0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0]], dtype=torch.float64)
    e = expectiles(z, None, LEVELS)  # [1, 21]
    assert expectile_foc_residual(e, z, LEVELS).abs().max().item() < 1e-12


def test_imputation_round_trip_exactly_representable() -> None:
    """Expectiles of a uniform K-atom distribution -> K samples with the same expectiles."""
    g = torch.Generator().manual_seed(3)
    atoms = torch.randn(32, 21, generator=g, dtype=torch.float64) * 2 + 1
    e = expectiles(atoms, None, LEVELS)
    z, res = impute_samples(e, LEVELS, return_residual=True, init="best")
    assert z.shape == (32, 21)
    assert torch.all(z[:, 1:] >= z[:, :-1])  # sorted
    err = (expectiles(z, None, LEVELS) - e).abs().amax(-1)
    spread = atoms.amax(-1) - atoms.amin(-1)
    # Most rows solve exactly; every row within 1 % of the distribution's range.
    assert (err < 1e-6).float().mean().item() >= 0.75
    assert torch.all(err < 0.01 * spread)
    assert torch.all(res >= 0)


def test_imputation_task_distribution_and_more_samples() -> None:
    rewards = torch.tensor([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0], dtype=torch.float64)
    e = expectiles(rewards, None, LEVELS)  # 21 = 3 copies of each reward is an exact solution
    z = impute_samples(e, LEVELS)
    assert isinstance(z, torch.Tensor)
    assert (expectiles(z, None, LEVELS) - e).abs().max().item() < 1e-6
    assert z.mean().item() == pytest.approx(rewards.mean().item(), abs=1e-6)  # tau=.5 pinned
    # Non-uniform weights, more samples than expectiles, float32 in -> float32 out.
    p = torch.tensor([0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05], dtype=torch.float64)
    e2 = expectiles(rewards, p, LEVELS).float()
    for init in ("expectiles", "grid", "best"):
        z2 = impute_samples(e2, LEVELS.float(), num_samples=60, bounds=(0.0, 25.0), init=init)
        assert isinstance(z2, torch.Tensor)
        assert z2.dtype == torch.float32 and z2.shape == (60,)
        assert z2.min().item() >= 0.0 and z2.max().item() <= 25.0
        # Non-convex least squares: within 1 % of the 0.1..20 range (typically far closer).
        assert (expectiles(z2, None, LEVELS.float()) - e2).abs().max().item() < 0.2


def test_imputation_validation() -> None:
    with pytest.raises(ValueError, match="strictly inside"):
        impute_samples(torch.zeros(3), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="init must be"):
        impute_samples(torch.zeros(3), torch.tensor([0.2, 0.5, 0.8]), init="random")
    with pytest.raises(ValueError, match="num_samples"):
        impute_samples(torch.zeros(3), torch.tensor([0.2, 0.5, 0.8]), num_samples=0)
