"""Numeric tests of the losses against hand-worked cases and naive reference loops."""

from __future__ import annotations

import pytest
import torch

from distrl_agents.losses import (
    categorical_cross_entropy,
    categorical_projection,
    fqf_fraction_loss,
    huber_loss,
    quantile_huber_loss,
)


def naive_projection(
    atoms: torch.Tensor, probs: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Per-atom loop of Bellemare et al. 2017, Algorithm 1 (l/u neighbours)."""
    B, N = atoms.shape
    K = support.shape[0]
    v_min, v_max = float(support[0]), float(support[-1])
    dz = (v_max - v_min) / (K - 1)
    out = torch.zeros(B, K, dtype=torch.float64)
    for b in range(B):
        for j in range(N):
            tz = min(max(float(atoms[b, j]), v_min), v_max)
            pos = (tz - v_min) / dz
            lo = int(pos // 1)
            hi = min(lo + 1, K - 1)
            frac = pos - lo
            if abs(frac) < 1e-12 or lo == K - 1:
                out[b, min(lo, K - 1)] += float(probs[b, j])
            else:
                out[b, lo] += float(probs[b, j]) * (1 - frac)
                out[b, hi] += float(probs[b, j]) * frac
    return out


SUPPORT = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])


def test_projection_splits_mass_between_neighbours() -> None:
    atoms = torch.tensor([[1.25]])
    out = categorical_projection(atoms, torch.ones(1, 1), SUPPORT)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.75, 0.25, 0.0, 0.0]]))


def test_projection_clips_both_ends() -> None:
    atoms = torch.tensor([[-7.0, 12.0]])
    probs = torch.tensor([[0.3, 0.7]])
    out = categorical_projection(atoms, probs, SUPPORT)
    torch.testing.assert_close(out, torch.tensor([[0.3, 0.0, 0.0, 0.0, 0.7]]))


def test_projection_atoms_exactly_on_support() -> None:
    atoms = SUPPORT.unsqueeze(0).clone()
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.25, 0.15]])
    out = categorical_projection(atoms, probs, SUPPORT)
    torch.testing.assert_close(out, probs)
    # gamma = 1, r = 1: every atom shifts one support point up; the top one is clipped.
    out = categorical_projection(atoms + 1.0, probs, SUPPORT)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4]]))


def test_projection_non_monotonic_atoms() -> None:
    # e.g. r + gamma z with gamma < 0 is unusual, but atoms in any order must project the same.
    atoms = torch.tensor([[3.5, 0.5, 2.0, -1.0]])
    probs = torch.tensor([[0.4, 0.2, 0.1, 0.3]])
    out = categorical_projection(atoms, probs, SUPPORT)
    expected = torch.tensor([[0.3 + 0.1, 0.1, 0.1, 0.2, 0.2]])
    torch.testing.assert_close(out, expected)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(categorical_projection(atoms[:, perm], probs[:, perm], SUPPORT), out)


def test_projection_matches_naive_loop_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(1)
    support = torch.linspace(-10, 10, 51)
    atoms = torch.randn(16, 51, generator=g) * 8.0
    atoms[:, :5] = support[torch.randint(0, 51, (16, 5), generator=g)]  # some exactly on points
    probs = torch.softmax(torch.randn(16, 51, generator=g), -1)
    out = categorical_projection(atoms, probs, support)
    ref = naive_projection(atoms, probs, support)
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.sum(-1), torch.ones(16))


def test_projection_preserves_mean_inside_support() -> None:
    support = torch.linspace(-10, 10, 51)
    atoms = torch.rand(8, 51) * 18 - 9
    probs = torch.softmax(torch.randn(8, 51), -1)
    out = categorical_projection(atoms, probs, support)
    torch.testing.assert_close((out * support).sum(-1), (atoms * probs).sum(-1), atol=1e-5, rtol=0)


def test_projection_does_not_mutate_inputs() -> None:
    atoms = torch.randn(4, 7) * 20
    probs = torch.softmax(torch.randn(4, 7), -1)
    a0, p0 = atoms.clone(), probs.clone()
    categorical_projection(atoms, probs, torch.linspace(-10, 10, 11))
    assert torch.equal(atoms, a0) and torch.equal(probs, p0)


def naive_quantile_huber(pred, target, taus, kappa, weights=None):  # type: ignore[no-untyped-def]
    """sum_i sum_j w_j |tau_i - 1{u<0}| L_kappa(u) / kappa, u = target_j - pred_i, in loops;
    ``weights`` [B, M] default to 1/M (the mean over target samples)."""
    B, N = pred.shape
    M = target.shape[1]
    taus = taus.expand(B, N) if taus.dim() == 2 else taus.unsqueeze(0).expand(B, N)
    out = torch.zeros(B, dtype=torch.float64)
    for b in range(B):
        for i in range(N):
            for j in range(M):
                u = float(target[b, j] - pred[b, i])
                if kappa == 0:
                    h = abs(u)
                else:
                    h = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
                    h /= kappa
                w = 1.0 / M if weights is None else float(weights[b, j])
                out[b] += w * abs(float(taus[b, i]) - (1.0 if u < 0 else 0.0)) * h
    return out


@pytest.mark.parametrize("kappa", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("taus_batched", [False, True])
def test_quantile_huber_matches_double_loop(kappa: float, taus_batched: bool) -> None:
    g = torch.Generator().manual_seed(2)
    B, N, M = 5, 6, 7
    pred = torch.randn(B, N, generator=g) * 2
    target = torch.randn(B, M, generator=g) * 2
    taus = torch.rand(B, N, generator=g) if taus_batched else torch.rand(N, generator=g)
    out = quantile_huber_loss(pred, target, taus, kappa=kappa)
    assert out.shape == (B,) and out.dtype == torch.float32
    ref = naive_quantile_huber(pred, target, taus, kappa)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_quantile_huber_hand_case() -> None:
    # One quantile at tau = 0.25, targets {0, 3}, pred 1, kappa 1:
    # u = -1 (weight 0.75, huber 0.5) and u = 2 (weight 0.25, huber 1.5): mean = (0.375+0.375)/2
    out = quantile_huber_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.0, 3.0]]), torch.tensor([0.25])
    )
    torch.testing.assert_close(out, torch.tensor([0.375]))


def test_quantile_huber_gradients_and_no_mutation() -> None:
    pred = torch.randn(4, 8, requires_grad=True)
    target = torch.randn(4, 9)
    taus = torch.rand(4, 8)
    t0, tau0 = target.clone(), taus.clone()
    quantile_huber_loss(pred, target, taus).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert torch.equal(target, t0) and torch.equal(taus, tau0)


def _autograd_quantile_huber(pred, target, taus, kappa, weights=None):  # type: ignore[no-untyped-def]
    """Eq. 10 element by element in float64, differentiated by autograd (the reference the
    fused loss and its hand-formed gradient are checked against)."""
    taus = taus if taus.dim() == 2 else taus.unsqueeze(0)
    u = target.unsqueeze(1) - pred.unsqueeze(2)
    w = (taus.unsqueeze(2) - (u.detach() < 0).double()).abs()
    if kappa == 0:
        h = u.abs()
    else:
        h = torch.where(u.abs() <= kappa, 0.5 * u * u, kappa * (u.abs() - 0.5 * kappa)) / kappa
    v = torch.full_like(target, 1.0 / target.shape[1]) if weights is None else weights
    return (w * h * v.unsqueeze(1)).sum(dim=(1, 2))


@pytest.mark.parametrize("kappa", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_quantile_huber_gradient_matches_autograd_of_the_formula(
    kappa: float, weighted: bool
) -> None:
    g = torch.Generator().manual_seed(3)
    B, N, M = 4, 9, 11
    pred64 = (torch.randn(B, N, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.randn(B, M, generator=g, dtype=torch.float64) * 2
    target[0, :3] = pred64.detach()[0, :3]  # exact ties u = 0
    target[1, 0] = pred64.detach()[1, 0] + kappa  # |u| = kappa exactly
    taus = torch.rand(B, N, generator=g, dtype=torch.float64)
    weights: torch.Tensor | None = torch.softmax(
        torch.randn(B, M, generator=g, dtype=torch.float64), -1
    )
    weights = weights if weighted else None
    scale = torch.randn(B, generator=g, dtype=torch.float64)  # a non-uniform upstream gradient
    (_autograd_quantile_huber(pred64, target, taus, kappa, weights) * scale).sum().backward()
    pred = pred64.detach().float().requires_grad_(True)
    out = quantile_huber_loss(pred, target.float(), taus.float(), kappa, weights)
    (out * scale.float()).sum().backward()
    assert pred.grad is not None
    torch.testing.assert_close(pred.grad.double(), pred64.grad, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # the loss without a gradient is the same number
        torch.testing.assert_close(
            quantile_huber_loss(pred, target.float(), taus.float(), kappa, weights), out.detach()
        )


def test_quantile_loss_minimiser_is_the_quantile() -> None:
    # The pinball loss over a sample set is minimised by the tau-quantile of the sample.
    target = torch.arange(1, 101, dtype=torch.float32).unsqueeze(0)  # 1..100
    grid = torch.linspace(0, 101, 1011).unsqueeze(1)  # candidate preds [G, 1]
    losses = quantile_huber_loss(grid, target.expand(grid.shape[0], -1), torch.tensor([0.3]), 0.0)
    best = grid[losses.argmin(), 0]
    assert 30.0 <= float(best) <= 31.0


def test_fqf_fraction_loss_gradient_is_w1_derivative() -> None:
    taus = torch.tensor([[0.0, 0.2, 0.5, 1.0]], requires_grad=True)
    v_tau = torch.tensor([[1.0, 2.0]])  # F^-1(tau_1), F^-1(tau_2)
    v_hat = torch.tensor([[0.5, 1.5, 3.0]])  # F^-1(tau_hat_0..2), monotone
    loss = fqf_fraction_loss(taus, v_tau, v_hat)
    loss.sum().backward()
    # Yang et al. 2019 Prop. 1: 2 F^-1(tau_i) - F^-1(tau_hat_i) - F^-1(tau_hat_{i-1})
    expected = torch.tensor([[0.0, 2 * 1.0 - 1.5 - 0.5, 2 * 2.0 - 3.0 - 1.5, 0.0]])
    torch.testing.assert_close(taus.grad, expected)


def test_fqf_fraction_loss_entropy_term() -> None:
    taus = torch.tensor([[0.0, 0.5, 1.0]])
    v_tau = torch.tensor([[1.0]])
    v_hat = torch.tensor([[0.0, 2.0]])
    ent = torch.tensor([0.7])
    base = fqf_fraction_loss(taus, v_tau, v_hat)
    with_ent = fqf_fraction_loss(taus, v_tau, v_hat, entropy=ent, entropy_coef=2.0)
    torch.testing.assert_close(with_ent, base - 1.4)


def test_huber_loss_and_cross_entropy() -> None:
    out = huber_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.5, -3.0]))
    torch.testing.assert_close(out, torch.tensor([0.125, 2.5]))
    logits = torch.randn(3, 5)
    target = torch.softmax(torch.randn(3, 5), -1)
    ce = categorical_cross_entropy(target, torch.log_softmax(logits, -1))
    ref = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(ce, ref)


def test_losses_are_fp32_for_bf16_inputs() -> None:
    pred = torch.randn(2, 4).bfloat16()
    target = torch.randn(2, 5).bfloat16()
    assert quantile_huber_loss(pred, target, torch.rand(4)).dtype == torch.float32
    assert (
        categorical_projection(target, torch.ones(2, 5).bfloat16() / 5, SUPPORT).dtype
        == torch.float32
    )
    assert huber_loss(pred[:, 0], target[:, 0]).dtype == torch.float32
