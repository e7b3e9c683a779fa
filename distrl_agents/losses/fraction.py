"""FQF fraction loss (Yang et al. 2019, Sec. 3.2, Proposition 1)."""

from __future__ import annotations

from torch import Tensor


def fqf_fraction_loss(
    taus: Tensor,
    values_at_taus: Tensor,
    values_at_tau_hats: Tensor,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
) -> Tensor:
    """Per-sample FQF fraction loss whose gradient w.r.t. ``tau_i`` is the W1 gradient.

    Yang et al. 2019, Proposition 1: for ``0 < i < N``,
    ``dW1/dtau_i = 2 F^-1(tau_i) - F^-1(tau_hat_i) - F^-1(tau_hat_{i-1})``.
    We write it as ``|F^-1(tau_i) - F^-1(tau_hat_{i-1})| - |F^-1(tau_i) - F^-1(tau_hat_i)|``,
    which equals the paper's expression when the learned quantile function is monotonic and
    stays the true derivative of the W1 staircase error when it is not (the authors' code
    corrects the sign in the same situation). The loss is ``sum_i g_i * tau_i`` with ``g``
    treated as a constant, so autograd delivers exactly ``g`` to the fraction network.

    An optional entropy bonus ``- entropy_coef * H(q)`` (authors' code, ``ent_coef``) keeps the
    proposal from collapsing.

    Args:
        taus: ``[B, N+1]`` proposed fractions (with gradient to the proposal network).
        values_at_taus: ``[B, N-1]`` quantile values ``F^-1(tau_i)``, ``i = 1..N-1`` (for the
            taken action; no gradient needed).
        values_at_tau_hats: ``[B, N]`` quantile values ``F^-1(tau_hat_i)``, ``i = 0..N-1``.
        entropy: ``[B]`` entropy of the proposal, or ``None``.
        entropy_coef: weight of the entropy bonus.

    Returns:
        ``[B]`` fp32 per-sample loss.
    """
    v_tau = values_at_taus.detach().float()  # [B, N-1]
    v_hat = values_at_tau_hats.detach().float()  # [B, N]
    grad_BN1 = (v_tau - v_hat[:, :-1]).abs() - (v_tau - v_hat[:, 1:]).abs()
    loss = (grad_BN1 * taus[:, 1:-1].float()).sum(-1)
    if entropy is not None and entropy_coef != 0.0:
        loss = loss - entropy_coef * entropy.float()
    return loss
