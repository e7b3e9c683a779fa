"""The one quantile (Huber) regression loss shared by QR-DQN, IQN and FQF."""

from __future__ import annotations

from typing import Any

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
    """Quantile Huber loss per sample (Dabney et al. 2018b IQN, Eq. 3; QR-DQN's Eq. 10 over
    its fixed quantiles).

    ``loss_b = sum_i mean_j |tau_i - 1{u_ij < 0}| * L_kappa(u_ij) / kappa``, with
    ``u_ij = target_j - pred_i``. The ``1 / kappa`` is IQN's (Eq. 3); QR-DQN's Eq. 10 has none,
    and the two agree at ``kappa = 1``, every preset's. ``kappa = 0`` gives the pinball loss
    ``|tau - 1{u<0}| |u|``. With ``target_weights`` ``w_j`` the mean over target samples becomes
    ``sum_j w_j (...)``: the target distribution is ``sum_j w_j delta(target_j)`` instead of
    equally weighted samples (FQF's width-weighted targets, whose samples sit at non-uniform
    fractions).

    Args:
        pred: ``[B, N]`` predicted quantile values at ``taus``.
        target: ``[B, M]`` target samples (constants: no gradient flows to them).
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
    target = target.detach().float()
    taus = taus.detach().float()
    if taus.dim() == 1:
        taus = taus.unsqueeze(0)
    weights = None if target_weights is None else target_weights.detach().float()
    if pred.requires_grad and torch.is_grad_enabled():
        return _QuantileHuber.apply(pred, target, taus, float(kappa), weights)
    return _quantile_huber_terms(pred, target, taus, kappa, weights, need_grad=False)[0]


def _quantile_huber_terms(
    pred: Tensor,
    target: Tensor,
    taus: Tensor,
    kappa: float,
    weights: Tensor | None,
    *,
    need_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    """The per-sample loss ``[B]`` and, if ``need_grad``, its gradient ``[B, N]`` w.r.t. ``pred``.

    One pass over the ``[B, N, M]`` pairs gives both: with ``u = target_j - pred_i``,
    ``c = clamp(u, -kappa, kappa)`` (``sign(u)`` for ``kappa = 0``) is ``L_kappa'(u)`` and
    ``L_kappa(u) = u c - c^2 / 2`` (``|u| = u sign(u)`` for ``kappa = 0``), so
    ``d loss_b / d pred_i = -sum_j w_j |tau_i - 1{u_ij<0}| c_ij / kappa``. Autograd through the
    element-wise formula instead records and replays a dozen ``[B, N, M]`` passes; QR-DQN's
    32 x 200 x 200 pairs made that a third of its update.
    """
    u_BNM = target.unsqueeze(1) - pred.unsqueeze(2)  # u_ij = T theta_j - theta_i
    tau_BN1 = taus.unsqueeze(2)
    weight_BNM = torch.where(u_BNM < 0, 1.0 - tau_BN1, tau_BN1)  # |tau_i - 1{u_ij < 0}|
    if kappa == 0:
        slope_BNM = u_BNM.sign()  # L_0'(u); |u| = u sign(u)
        loss_BNM = u_BNM * slope_BNM
    else:
        slope_BNM = u_BNM.clamp(-kappa, kappa)  # L_kappa'(u)
        loss_BNM = torch.addcmul(u_BNM * slope_BNM, slope_BNM, slope_BNM, value=-0.5)
    scale = 1.0 if kappa == 0 else 1.0 / kappa
    if weights is None:  # the mean over the M target samples
        scale /= u_BNM.shape[2]
    else:  # P(target_j), sums to 1 over j
        weight_BNM = weight_BNM * weights.unsqueeze(1)
    loss_B = (weight_BNM * loss_BNM).sum(dim=(1, 2)) * scale
    grad_BN = (weight_BNM * slope_BNM).sum(dim=2) * -scale if need_grad else None
    return loss_B, grad_BN


class _QuantileHuber(torch.autograd.Function):
    """:func:`quantile_huber_loss` with its gradient w.r.t. ``pred`` formed in the forward pass
    (targets, levels and weights are constants)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pred: Tensor, target: Tensor, taus: Tensor, kappa: float,
        weights: Tensor | None,
    ) -> Tensor:  # fmt: skip
        loss_B, grad_BN = _quantile_huber_terms(pred, target, taus, kappa, weights, need_grad=True)
        ctx.save_for_backward(grad_BN)
        return loss_B

    @staticmethod
    def backward(ctx: Any, grad_B: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (grad_BN,) = ctx.saved_tensors
        return grad_BN * grad_B.unsqueeze(1), None, None, None, None
