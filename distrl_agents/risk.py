"""Risk-sensitive action values: distortion risk measures of a ``ReturnDistribution``.

Convention (IQN, Dabney et al. 2018, Sec. 3.1): a distortion ``beta: [0, 1] -> [0, 1]`` acts on
quantile levels, and the distorted value of a return ``Z`` is

    Q_beta = E_{tau ~ U[0, 1]} [ F_Z^{-1}(beta(tau)) ].

For an atom set (values ``v_i``, probs ``p_i``) per action, sort the atoms, ``F_i`` = cumulative
probability (``F_0 = 0``). Atom ``i`` owns the quantile levels ``(F_{i-1}, F_i]`` and is hit when
``beta(tau)`` falls there, so (``beta`` increasing, ``g = beta^{-1}``)

    Q_beta = sum_i v_i [ g(F_i) - g(F_{i-1}) ],

exactly (no sampling of ``tau``); ``g`` is the distortion applied to the CDF. Implemented:

- ``neutral``: ``dist.q_values()`` (the mean; takes no ``param``).
- ``cvar`` (IQN ``CVaR(eta, tau) = eta tau``): ``g(u) = min(u / eta, 1)``, the mean of the lower
  ``eta`` fraction (default 0.25).
- ``pessimistic``: the same lower-tail mean as ``cvar`` with ``param`` = the fraction kept.
- ``optimistic``: the mirror, the mean of the upper ``param`` fraction:
  ``g(u) = max(0, (u - (1 - param)) / param)`` (default 0.25).
- ``wang`` (IQN ``Wang(eta, tau) = Phi(Phi^{-1}(tau) + eta)``): ``g(u) = Phi(Phi^{-1}(u) - eta)``;
  ``eta < 0`` risk-averse, ``eta > 0`` risk-seeking (default -0.75).
- ``pow`` (IQN ``Pow``): ``beta(tau) = tau^(1/(1+|eta|))`` for ``eta >= 0`` (seeking),
  ``1 - (1 - tau)^(1/(1+|eta|))`` for ``eta < 0`` (averse); so ``g(u) = u^(1+|eta|)`` or
  ``1 - (1 - u)^(1+|eta|)`` (default -2.0).
- ``cpw`` (IQN, Tversky & Kahneman 1992): ``beta(tau) = tau^eta / (tau^eta + (1-tau)^eta)^(1/eta)``;
  ``g = beta^{-1}`` by vectorised bisection (``beta`` is increasing for ``eta >= 0.28``, which
  is required; default 0.71).

Atom sets are read as given: quantile agents (QR-DQN, IQN, FQF) and C51 give atoms with
probabilities. Expectile agents' atoms are expectiles, not samples: pass ``from_expectiles=True``
to impute samples first (``distrl_agents.expectiles.impute_samples``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.expectiles import impute_samples

__all__ = ["DEFAULT_PARAMS", "RISK_MEASURES", "action_values", "distortion", "make_action_value_fn"]

RISK_MEASURES = ("neutral", "cvar", "wang", "cpw", "pow", "optimistic", "pessimistic")
DEFAULT_PARAMS: dict[str, float | None] = {
    "neutral": None,
    "cvar": 0.25,
    "wang": -0.75,
    "cpw": 0.71,
    "pow": -2.0,
    "optimistic": 0.25,
    "pessimistic": 0.25,
}


def _validate(risk: str, param: float | None) -> float | None:
    if risk not in RISK_MEASURES:
        raise ValueError(
            f"unknown risk measure {risk!r}; valid choices: {', '.join(RISK_MEASURES)}"
        )
    if risk == "neutral":
        if param is not None:
            raise ValueError("risk='neutral' takes no param (it is the mean); pass param=None")
        return None
    value = DEFAULT_PARAMS[risk] if param is None else float(param)
    assert value is not None
    if not math.isfinite(value):
        raise ValueError(f"risk={risk!r} needs a finite param; got {param}")
    if risk in ("cvar", "optimistic", "pessimistic") and not 0.0 < value <= 1.0:
        raise ValueError(f"risk={risk!r} needs param (the tail fraction) in (0, 1]; got {value}")
    if risk == "cpw" and value < 0.28:
        raise ValueError(f"risk='cpw' needs param eta >= 0.28 (monotone weighting); got {value}")
    return value


def _phi(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _cpw_beta(tau: Tensor, eta: float) -> Tensor:
    # IQN (Dabney et al. 2018, Sec. 3.1) CPW: tau^eta / (tau^eta + (1 - tau)^eta)^(1 / eta)
    a, b = tau.pow(eta), (1.0 - tau).pow(eta)
    return a / (a + b).pow(1.0 / eta)


def distortion(risk: str, param: float | None = None) -> Callable[[Tensor], Tensor]:
    """The CDF distortion ``g = beta^{-1}`` of a risk measure (``g(0) = 0``, ``g(1) = 1``)."""
    eta = _validate(risk, param)
    if risk == "neutral":
        return lambda u: u
    assert eta is not None
    if risk in ("cvar", "pessimistic"):
        return lambda u: (u / eta).clamp(max=1.0)  # beta(tau) = eta tau
    if risk == "optimistic":
        return lambda u: ((u - (1.0 - eta)) / eta).clamp(min=0.0)  # beta(tau) = 1 - eta + eta tau
    if risk == "wang":

        def g_wang(u: Tensor) -> Tensor:
            # beta(tau) = Phi(Phi^{-1}(tau) + eta)  =>  g(u) = Phi(Phi^{-1}(u) - eta)
            uc = u.clamp(1e-12, 1 - 1e-12)
            inner = math.sqrt(2.0) * torch.erfinv(2.0 * uc - 1.0) - eta
            out = _phi(inner)
            return torch.where(
                u <= 0, torch.zeros_like(u), torch.where(u >= 1, torch.ones_like(u), out)
            )

        return g_wang
    if risk == "pow":
        power = 1.0 + abs(eta)
        if eta >= 0:
            return lambda u: u.clamp(0.0, 1.0).pow(power)  # beta = tau^(1/(1+|eta|))
        return lambda u: (
            1.0 - (1.0 - u.clamp(0.0, 1.0)).pow(power)
        )  # beta = 1-(1-tau)^(1/(1+|eta|))

    def g_cpw(u: Tensor) -> Tensor:
        lo, hi = torch.zeros_like(u), torch.ones_like(u)
        for _ in range(60):  # bisection for beta^{-1}(u), beta increasing for eta >= 0.28
            mid = 0.5 * (lo + hi)
            below = _cpw_beta(mid, eta) < u
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return torch.where(u >= 1, torch.ones_like(u), 0.5 * (lo + hi))

    return g_cpw


def _samples_from_expectiles(
    dist: ReturnDistribution, imputation_iters: int = 300
) -> ReturnDistribution:
    if dist.taus is None:
        raise ValueError("from_expectiles=True needs dist.taus (the expectile levels)")
    b, a, n = dist.values.shape
    taus = dist.taus.float()
    taus_rows = taus.unsqueeze(1).expand(b, a, -1).reshape(b * a, -1)
    z = impute_samples(
        dist.values.detach().float().reshape(b * a, n), taus_rows, max_iters=imputation_iters
    )
    assert isinstance(z, Tensor)
    values = z.reshape(b, a, n)
    return ReturnDistribution(values=values, probs=torch.full_like(values, 1.0 / n), taus=None)


def action_values(
    dist: ReturnDistribution,
    risk: str = "neutral",
    param: float | None = None,
    *,
    from_expectiles: bool = False,
    imputation_iters: int = 300,
) -> Tensor:
    """Distorted action values ``[B, A]`` (fp32) of every action's return distribution.

    Args:
        dist: values/probs ``[B, A, N]``.
        risk: one of ``RISK_MEASURES`` (see the module docstring for each definition).
        param: the measure's parameter (``None``: ``DEFAULT_PARAMS[risk]``).
        from_expectiles: ``dist.values`` are expectiles at ``dist.taus``; impute equal-weight
            samples first (for ``neutral`` the mean is read off directly as ``q_values``).
    """
    eta = _validate(risk, param)
    if risk == "neutral":
        return dist.q_values()
    if from_expectiles:
        dist = _samples_from_expectiles(dist, imputation_iters)
    g = distortion(risk, eta)
    values = dist.values.float()
    probs = dist.probs.float()
    v_sorted, order = torch.sort(values, dim=-1)
    p_sorted = torch.gather(probs, -1, order)
    cdf = torch.cumsum(p_sorted, -1)
    cdf = cdf / cdf[..., -1:].clamp_min(1e-12)  # F_N = 1 exactly
    g_hi = g(cdf.double()).float()
    g_lo = torch.cat([torch.zeros_like(g_hi[..., :1]), g_hi[..., :-1]], -1)
    weights = g_hi - g_lo  # g(F_i) - g(F_{i-1})  (distortion risk measure, IQN Sec. 3.1)
    return (weights * v_sorted).sum(-1)


def make_action_value_fn(
    risk: str = "neutral",
    param: float | None = None,
    *,
    from_expectiles: bool = False,
    imputation_iters: int = 300,
) -> Callable[[ReturnDistribution], Tensor]:
    """A callable ``dist -> [B, A]`` for an agent's ``action_value_fn`` (validated now).

    ``imputation_iters`` bounds the imputation solver when ``from_expectiles`` (acting happens at
    every step: an agent passes its own, smaller, training setting)."""
    eta = _validate(risk, param)

    def action_value_fn(dist: ReturnDistribution) -> Tensor:
        return action_values(
            dist, risk, eta, from_expectiles=from_expectiles, imputation_iters=imputation_iters
        )

    action_value_fn.__name__ = f"action_values_{risk}"
    action_value_fn.__qualname__ = action_value_fn.__name__
    return action_value_fn
