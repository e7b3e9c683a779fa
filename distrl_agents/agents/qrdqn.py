"""QR-DQN (Dabney et al. 2018a): fixed quantile midpoints, quantile Huber loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least
from distrl_agents.agents.targets import bellman_target, greedy_action
from distrl_agents.losses import quantile_huber_loss
from distrl_agents.networks import QuantileHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class QRDQNConfig(AgentConfig):
    """QR-DQN's hyperparameters (Dabney et al. 2018a, Sec. 5)."""

    num_quantiles: int = 200
    """``N``, the number of quantile midpoints."""
    kappa: float = 1.0
    """Huber threshold of the quantile Huber loss (0: the pinball loss)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 1, "num_quantiles")
        check_at_least(self, 0, "kappa")


class QRDQNAgent(Agent):
    """Quantile regression DQN.

    Target (Dabney et al. 2018a, Algorithm 1): ``T theta_j = r + gamma^n theta_j(x', a*)``,
    ``a* = argmax_a mean_j theta_j(x', a)``; loss Eq. 10 at ``tau_hat_i = (2i+1)/2N`` (divided
    by ``kappa`` as IQN's Eq. 3: the same at the preset's ``kappa = 1``).
    """

    name = "qrdqn"
    Config = QRDQNConfig
    config: QRDQNConfig
    test_sizes: ClassVar[dict[str, Any]] = {"num_quantiles": 16}

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        return QuantileHead, {"num_quantiles": self.config.num_quantiles}

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        dist = self.distribution(self.online, batch.obs)  # [B, A, N]
        theta = dist.for_actions(action).values.squeeze(1)  # [B, N]
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, N]
            double = self.config.double_dqn
            select = self.distribution(self.online, batch.next_obs) if double else next_dist
            theta_next = next_dist.for_actions(greedy_action(select)).values.squeeze(1)  # [B, N]
            target = bellman_target(batch.reward, batch.discount, theta_next)  # [B, N], Alg. 1
        head = cast(QuantileHead, self.online.head)  # head_spec() builds a quantile head
        per_sample = quantile_huber_loss(theta, target, head.taus, self.config.kappa)  # Eq. 10
        return LossOutput(per_sample=per_sample, q_taken=theta.detach().mean(-1))
