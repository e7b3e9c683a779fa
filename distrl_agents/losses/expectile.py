"""The expectile regression loss of ER-DQN (Rowland et al. 2019); the expectile statistics and
imputation it is used with are in ``distrl_agents.expectiles``."""

from __future__ import annotations

import torch
from torch import Tensor

from distrl_agents.expectiles import broadcast_levels

__all__ = ["expectile_loss"]


def expectile_loss(pred: Tensor, target: Tensor, taus: Tensor) -> Tensor:
    """Per-sample expectile regression loss, ``[B]`` fp32.

    ``loss_b = sum_k mean_j |tau_k - 1{u_bkj < 0}| * u_bkj^2`` with ``u_bkj = target_bj - pred_bk``:
    the asymmetric squared (expectile regression) loss of ER-DQN (Rowland et al. 2019, EDRL; Newey &
    Powell 1987). Its minimiser over ``pred_bk`` is the ``tau_k``-expectile of the target samples.

    Args:
        pred: ``[B, K]`` predicted expectiles (gradients flow through this).
        target: ``[B, M]`` target samples (treated as data; detach them yourself if needed).
        taus: ``[K]`` or ``[B, K]`` expectile levels in [0, 1].
    """
    if pred.dim() != 2 or target.dim() != 2 or pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"pred must be [B, K] and target [B, M]; got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    batch, k = pred.shape
    tau_BK1 = broadcast_levels(taus, batch, k, pred.device).unsqueeze(-1)
    u_BKM = target.float().unsqueeze(1) - pred.float().unsqueeze(2)  # u = target - pred
    # Asymmetric weight |tau - 1{u < 0}| (Rowland et al. 2019, expectile regression loss).
    weight_BKM = torch.abs(tau_BK1 - (u_BKM.detach() < 0).float())
    return (weight_BKM * u_BKM.pow(2)).mean(-1).sum(-1)
