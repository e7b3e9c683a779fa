"""The one quantile (Huber) regression loss shared by QR-DQN, IQN and FQF."""

from __future__ import annotations

import torch
from torch import Tensor


def huber(u: Tensor, kappa: float = 1.0) -> Tensor:
    """Huber loss ``L_kappa(u)`` (Dabney et al. 2018a, Eq. 9); ``|u|`` when ``kappa = 0``."""
    abs_u = u.abs()
    if kappa == 0:
        return abs_u
    return torch.where(abs_u <= kappa, 0.5 * u * u, kappa * (abs_u - 0.5 * kappa))


def quantile_huber_loss(
    pred: Tensor,
    target: Tensor,
    taus: Tensor,
    kappa: float = 1.0,
    target_weights: Tensor | None = None,
) -> Tensor:
    """Quantile Huber loss per sample (Dabney et al. 2018a QR-DQN, Eq. 10; IQN Eq. 3).

    ``loss_b = sum_i mean_j |tau_i - 1{u_ij < 0}| * L_kappa(u_ij) / kappa``, with
    ``u_ij = target_j - pred_i``. ``kappa = 0`` gives the pinball loss ``|tau - 1{u<0}| |u|``.
    With ``target_weights`` ``w_j`` the mean over target samples becomes ``sum_j w_j (...)``:
    the target distribution is ``sum_j w_j delta(target_j)`` instead of equally weighted samples
    (FQF's width-weighted targets, whose samples sit at non-uniform fractions).

    Args:
        pred: ``[B, N]`` predicted quantile values at ``taus``.
        target: ``[B, M]`` target samples (treated as constants; detach them upstream).
        taus: ``[B, N]`` or ``[N]`` quantile levels of ``pred`` (no gradient flows through them).
        kappa: Huber threshold (>= 0).
        target_weights: ``[B, M]`` probabilities of the target samples (summing to 1 over ``M``;
            treated as constants), or ``None`` for ``1 / M`` each.

    Returns:
        ``[B]`` fp32 per-sample loss.
    """
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    pred = pred.float()
    target = target.float()
    taus = taus.detach().float()
    if taus.dim() == 1:
        taus = taus.unsqueeze(0)
    u_BNM = target.unsqueeze(1) - pred.unsqueeze(2)  # u_ij = T theta_j - theta_i
    weight_BNM = (taus.unsqueeze(2) - (u_BNM.detach() < 0).float()).abs()  # |tau_i - 1{u_ij<0}|
    loss_BNM = weight_BNM * huber(u_BNM, kappa)
    if kappa > 0:
        loss_BNM = loss_BNM / kappa
    if target_weights is None:
        return loss_BNM.mean(dim=2).sum(dim=1)
    w_B1M = target_weights.detach().float().unsqueeze(1)  # P(target_j), sums to 1 over j
    return (loss_BNM * w_B1M).sum(dim=2).sum(dim=1)
