"""Expected-value (DQN) loss."""

from __future__ import annotations

from torch import Tensor

from distrl_agents.losses.quantile import huber


def huber_loss(pred: Tensor, target: Tensor, kappa: float = 1.0) -> Tensor:
    """Per-sample Huber TD loss ``L_kappa(target - pred)`` (Mnih et al. 2015, Methods: error
    clipping to [-1, 1] is the Huber loss with ``kappa = 1``). ``pred``, ``target`` ``[B]`` -> ``[B]``
    fp32; ``kappa = 0`` gives ``|u|``; use a large ``kappa`` for a squared loss."""
    return huber(target.float() - pred.float(), kappa)
