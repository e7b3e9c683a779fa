"""QR-DQN (Dabney et al. 2018a): fixed quantile midpoints, quantile Huber loss."""

from __future__ import annotations

from typing import Any, cast

import torch

from distrl_agents.agents.base import Agent, LossOutput, check_hparam
from distrl_agents.losses import quantile_huber_loss
from distrl_agents.networks import QuantileHead
from distrl_agents.types import Batch


class QRDQNAgent(Agent):
    """Quantile regression DQN.

    Target (Dabney et al. 2018a, Algorithm 1): ``T theta_j = r + gamma^n theta_j(x', a*)``,
    ``a* = argmax_a mean_j theta_j(x', a)``; loss Eq. 10 at ``tau_hat_i = (2i+1)/2N``.

    Args:
        num_quantiles: ``N`` (200).
        kappa: Huber threshold (1; 0 = pinball loss).
        **kwargs: shared ``Agent`` arguments.
    """

    name = "qrdqn"

    def __init__(
        self,
        *,
        num_quantiles: int = 200,
        kappa: float = 1.0,
        lr: float = 5e-5,
        optimizer_eps: float = 0.01 / 32,
        **kwargs: Any,
    ) -> None:
        self.num_quantiles = int(num_quantiles)
        self.kappa = float(kappa)
        super().__init__(
            lr=lr,
            optimizer_eps=optimizer_eps,
            agent_hparams={"num_quantiles": self.num_quantiles, "kappa": self.kappa},
            **kwargs,
        )

    def _validate(self) -> None:
        check_hparam(
            self.num_quantiles >= 1, "num_quantiles", f"must be >= 1, got {self.num_quantiles}"
        )
        check_hparam(self.kappa >= 0, "kappa", f"must be >= 0, got {self.kappa}")

    def head_spec(self) -> tuple[str, dict[str, Any]]:
        return "quantile", {"num_quantiles": self.num_quantiles}

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        dist = self.distribution(self.online, batch.obs).for_actions(action)
        theta = dist.values.squeeze(1)  # [B, N]
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, N]
            a_star = self.next_actions(batch.next_obs, next_dist)
            theta_next = next_dist.for_actions(a_star).values.squeeze(1)  # [B, N]
            reward = batch.reward.to(self.device).float().unsqueeze(1)
            discount = batch.discount.to(self.device).float().unsqueeze(1)
            target = reward + discount * theta_next  # Dabney et al. 2018a, Algorithm 1
        head = cast(QuantileHead, self.online.head)  # head_spec() builds a quantile head
        per_sample = quantile_huber_loss(theta, target, head.taus, self.kappa)
        return LossOutput(per_sample=per_sample, q_taken=theta.detach().mean(-1))
