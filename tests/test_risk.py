"""Distortion risk measures on hand-worked distributions (distrl_agents.risk)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.expectiles import expectiles
from distrl_agents.risk import (
    DEFAULT_PARAMS,
    RISK_MEASURES,
    action_values,
    distortion,
    make_action_value_fn,
)


def _dist(values: list[list[float]], probs: list[list[float]]) -> ReturnDistribution:
    v = torch.tensor([values], dtype=torch.float32)  # [1, A, N]
    p = torch.tensor([probs], dtype=torch.float32)
    return ReturnDistribution(values=v, probs=p)


COIN = _dist([[10.0, 0.0]], [[0.5, 0.5]])  # atoms {0, 10} w.p. 1/2 each (unsorted on purpose)


@pytest.mark.parametrize(
    ("risk", "param", "expected"),
    [
        ("neutral", None, 5.0),
        ("cvar", 0.5, 0.0),
        ("cvar", 0.25, 0.0),
        ("cvar", 1.0, 5.0),
        ("cvar", 0.75, 10.0 * 0.25 / 0.75),  # lower 3/4: 2/3 of it at 0, 1/3 at 10
        ("pessimistic", 0.75, 10.0 * 0.25 / 0.75),
        ("optimistic", 0.5, 10.0),
        ("optimistic", 0.75, 10.0 * 0.5 / 0.75),
        ("optimistic", 1.0, 5.0),
        ("wang", -0.75, 10.0 * norm.cdf(-0.75)),  # weight on 10: 1 - Phi(Phi^-1(.5) + .75)
        ("wang", 0.75, 10.0 * norm.cdf(0.75)),
        ("wang", 0.0, 5.0),
        ("pow", -2.0, 10.0 * 0.5**3),  # g(.5) = 1 - .5^3 on the 0 atom
        ("pow", 2.0, 10.0 * (1 - 0.5**3)),
        ("pow", 0.0, 5.0),
    ],
)
def test_coin_flip_hand_worked(risk: str, param: float | None, expected: float) -> None:
    got = action_values(COIN, risk, param)
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_cpw_coin_against_scipy_inverse() -> None:
    eta = 0.71

    def beta(t: float) -> float:
        return t**eta / (t**eta + (1 - t) ** eta) ** (1 / eta)

    g_half = brentq(lambda t: beta(t) - 0.5, 1e-9, 1 - 1e-9, xtol=1e-14)
    assert action_values(COIN, "cpw", eta).item() == pytest.approx(10 * (1 - g_half), abs=1e-5)
    assert action_values(COIN, "cpw", 1.0).item() == pytest.approx(5.0, abs=1e-5)  # identity


def test_three_atoms_batch_and_actions() -> None:
    # Action 0: {-1, 2, 5} w.p. {.2, .5, .3}; action 1: a point mass at 1.
    dist = ReturnDistribution(
        values=torch.tensor([[[5.0, -1.0, 2.0], [1.0, 1.0, 1.0]]] * 2),
        probs=torch.tensor([[[0.3, 0.2, 0.5], [0.2, 0.3, 0.5]]] * 2),
    )
    cvar = action_values(dist, "cvar", 0.5)  # lower half: .2 at -1, .3 at 2 -> (-.2 + .6)/.5
    torch.testing.assert_close(cvar, torch.tensor([[0.8, 1.0]] * 2))
    opt = action_values(dist, "optimistic", 0.4)  # upper .4: .3 at 5, .1 at 2 -> 1.7/.4
    torch.testing.assert_close(opt, torch.tensor([[4.25, 1.0]] * 2))
    torch.testing.assert_close(action_values(dist), dist.q_values())
    # Every measure of a point mass is that point.
    for risk in RISK_MEASURES:
        assert torch.allclose(action_values(dist, risk)[:, 1], torch.ones(2), atol=1e-5)


def test_matches_monte_carlo_over_tau() -> None:
    """Q_beta = E_tau[F^{-1}(beta(tau))] (IQN Sec. 3.1), checked by Monte Carlo over tau."""
    g = torch.Generator().manual_seed(4)
    values = torch.randn(1, 3, 6, generator=g, dtype=torch.float64)
    probs = torch.rand(1, 3, 6, generator=g, dtype=torch.float64)
    probs = probs / probs.sum(-1, keepdim=True)
    dist = ReturnDistribution(values=values, probs=probs)
    tau = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000
    betas = {
        "cvar": lambda t: 0.3 * t,
        "optimistic": lambda t: 1 - 0.3 + 0.3 * t,
        "wang": lambda t: torch.tensor(norm.cdf(norm.ppf(t.numpy()) - 0.5)),
        "pow": lambda t: 1 - (1 - t).pow(1 / 3.0),
        "cpw": lambda t: t**0.71 / (t**0.71 + (1 - t) ** 0.71) ** (1 / 0.71),
    }
    params = {"cvar": 0.3, "optimistic": 0.3, "wang": -0.5, "pow": -2.0, "cpw": 0.71}
    v_sorted, order = torch.sort(values[0], -1)
    cdf = torch.cumsum(torch.gather(probs[0], -1, order), -1)
    for risk, beta in betas.items():
        levels = beta(tau).clamp(0, 1 - 1e-12)
        idx = torch.searchsorted(cdf.contiguous(), levels.expand(3, -1).contiguous()).clamp_max(5)
        mc = torch.gather(v_sorted, -1, idx).mean(-1)
        got = action_values(dist, risk, params[risk])[0].double()
        torch.testing.assert_close(got, mc, atol=2e-3, rtol=0, msg=risk)


def test_distortions_are_cdfs_on_unit_interval() -> None:
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    for risk in RISK_MEASURES:
        g = distortion(risk)(u)
        assert g[0].item() == pytest.approx(0, abs=1e-9) and g[-1].item() == pytest.approx(
            1, abs=1e-9
        )
        assert torch.all(g[1:] >= g[:-1] - 1e-12), risk


def test_averse_below_mean_below_seeking() -> None:
    dist = _dist([[0.0, 1.0, 3.0, 20.0]], [[0.4, 0.3, 0.2, 0.1]])
    mean = action_values(dist).item()
    for risk in ("cvar", "pessimistic", "pow"):
        assert action_values(dist, risk).item() < mean
    assert (
        action_values(dist, "wang", -0.75).item() < mean < action_values(dist, "wang", 0.75).item()
    )
    assert action_values(dist, "optimistic").item() > mean


def test_make_action_value_fn_and_validation() -> None:
    fn = make_action_value_fn("cvar", 0.5)
    assert fn(COIN).item() == pytest.approx(0.0, abs=1e-6)
    assert make_action_value_fn()(COIN).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="valid choices: neutral, cvar"):
        make_action_value_fn("var")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        make_action_value_fn("cvar", 0.0)
    with pytest.raises(ValueError, match="neutral"):
        action_values(COIN, "neutral", 0.3)
    with pytest.raises(ValueError, match=r"0\.28"):
        make_action_value_fn("cpw", 0.1)
    assert set(DEFAULT_PARAMS) == set(RISK_MEASURES)


def test_from_expectiles_imputes_before_distorting() -> None:
    atoms = torch.tensor([0.0, 0.0, 10.0, 10.0], dtype=torch.float64)
    taus = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    e = expectiles(atoms, None, taus).float()  # [8] expectiles of the coin flip
    dist = ReturnDistribution(
        values=e.view(1, 1, 8), probs=torch.full((1, 1, 8), 1 / 8), taus=taus.float().view(1, 8)
    )
    cvar = action_values(dist, "cvar", 0.5, from_expectiles=True).item()
    assert cvar == pytest.approx(0.0, abs=0.3)
    assert math.isfinite(cvar)
    assert action_values(dist, "cvar", 0.5).item() > 1.0  # reading expectiles as atoms is wrong
    with pytest.raises(ValueError, match="taus"):
        action_values(COIN, "cvar", from_expectiles=True)
