"""FQF fraction losses (Yang et al. 2019, Sec. 3.2, Proposition 1) in the forms the public
implementations use, and the entropy the authors' code adds."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def fqf_fraction_loss(
    taus: Tensor,
    values_at_taus: Tensor,
    values_at_tau_hats: Tensor,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    *,
    sign_corrected: bool = True,
) -> Tensor:
    """Per-sample FQF fraction loss whose gradient w.r.t. ``tau_i`` is the W1 gradient.

    Yang et al. 2019, Proposition 1: for ``0 < i < N``,
    ``dW1/dtau_i = 2 F^-1(tau_i) - F^-1(tau_hat_i) - F^-1(tau_hat_{i-1})``. With
    ``sign_corrected=False`` that expression is used as written (the authors' ``directbp``). By
    default it is written ``|F^-1(tau_i) - F^-1(tau_hat_{i-1})| - |F^-1(tau_i) - F^-1(tau_hat_i)|``,
    which equals it when the learned quantile function is monotonic and stays the true derivative
    of the W1 staircase error when it is not (Kuwahara's port corrects the sign in the same
    situation). The loss is ``sum_i g_i * tau_i`` with ``g`` treated as a constant, so autograd
    delivers exactly ``g`` to the fraction network.

    An optional entropy bonus ``- entropy_coef * entropy`` keeps the proposal from collapsing.

    Args:
        taus: ``[B, N+1]`` proposed fractions (with gradient to the proposal network).
        values_at_taus: ``[B, N-1]`` quantile values ``F^-1(tau_i)``, ``i = 1..N-1`` (for the
            taken action; no gradient needed).
        values_at_tau_hats: ``[B, N]`` quantile values ``F^-1(tau_hat_i)``, ``i = 0..N-1``.
        entropy: ``[B]`` entropy of the proposal, or ``None``.
        entropy_coef: weight of the entropy bonus.
        sign_corrected: the absolute-value form above (``False``: Proposition 1 as written).

    Returns:
        ``[B]`` fp32 per-sample loss.
    """
    v_tau = values_at_taus.detach().float()  # [B, N-1]
    v_hat = values_at_tau_hats.detach().float()  # [B, N]
    if sign_corrected:
        grad_BN1 = (v_tau - v_hat[:, :-1]).abs() - (v_tau - v_hat[:, 1:]).abs()
    else:
        grad_BN1 = 2 * v_tau - v_hat[:, :-1] - v_hat[:, 1:]
    loss = (grad_BN1 * taus[:, 1:-1].float()).sum(-1)
    if entropy is not None and entropy_coef != 0.0:
        loss = loss - entropy_coef * entropy.float()
    return loss


def squared_fraction_loss(
    taus: Tensor, quantile_fn: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The authors' ``sqloss`` (microsoft/FQF, ``fqf_network``'s ``L_tau``): per sample,
    ``mean_i (2 F^-1(tau_i) - F^-1(tau_hat_i) - F^-1(tau_hat_{i-1}))^2`` over ``0 < i < N``,
    minimised through the quantile network's dependence on the fractions only (the authors'
    fraction optimiser updates the proposal layer alone). Its zeros are the fractions at which
    Proposition 1's W1 gradient vanishes.

    Args:
        taus: ``[B, N+1]`` proposed fractions (with gradient to the proposal network).
        quantile_fn: levels ``[B, M]`` -> quantile values ``[B, M]`` of the taken action, from a
            network whose parameters must not learn from this loss (pass detached features;
            the parameters' ``.grad`` is not touched: the derivative is taken w.r.t. the
            fractions alone).

    Returns:
        ``(surrogate, loss)``, both ``[B]`` fp32: ``surrogate = sum_i (dloss/dtau_i) tau_i`` with
        the derivative a constant, whose gradient reaches the proposal network exactly as the
        loss's would; ``loss`` (detached) is the squared-gradient value itself.
    """
    with torch.enable_grad():
        t = taus.detach().float().requires_grad_(True)  # [B, N+1]
        hats = 0.5 * (t[:, :-1] + t[:, 1:])  # [B, N]
        v_tau = quantile_fn(t[:, 1:-1]).float()  # [B, N-1]
        v_hat = quantile_fn(hats).float()  # [B, N]
        g = 2 * v_tau - v_hat[:, :-1] - v_hat[:, 1:]
        loss = (g * g).mean(-1)  # [B]
        (dloss_dtau,) = torch.autograd.grad(loss.sum(), t)
    surrogate = (dloss_dtau.detach() * taus.float()).sum(-1)
    return surrogate, loss.detach()


def cumulative_fraction_entropy(taus: Tensor) -> Tensor:
    """``sum_{0<i<N} -tau_i log tau_i`` ``[B]``: the entropy term of the authors' code (over the
    cumulative fractions, not over the proposal's probabilities). ``taus``: ``[B, N+1]``."""
    inner = taus[:, 1:-1].float().clamp(min=1e-12)
    return -(inner * inner.log()).sum(-1)
