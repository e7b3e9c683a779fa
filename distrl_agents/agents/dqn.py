"""DQN (Mnih et al. 2015): expected-value head, Q-learning target, Huber loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least
from distrl_agents.agents.targets import bellman_target, greedy_action
from distrl_agents.losses import huber_loss
from distrl_agents.networks import ExpectedValueHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class DQNConfig(AgentConfig):
    """DQN's hyperparameters; the optimiser is Dopamine's (TensorFlow RMSProp)."""

    huber_kappa: float = 1.0
    """Huber threshold (1 = Nature's error clipping; 0 = absolute error)."""
    optimizer: str = "rmsprop_tf"
    lr: float = 2.5e-4
    optimizer_eps: float = 1e-5
    rmsprop_alpha: float = 0.95
    rmsprop_centered: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 0, "huber_kappa")


class DQNAgent(Agent):
    """DQN as the ``N = 1`` distributional agent.

    Target (Mnih et al. 2015, Eq. 2 / Algorithm 1): ``y = r + gamma^n * max_a' Q_target(x', a')``
    with the n-step reward and discount already in ``batch``; loss ``Huber_kappa(y - Q(x, a))``.
    """

    name = "dqn"
    Config = DQNConfig
    config: DQNConfig
    test_sizes: ClassVar[dict[str, Any]] = {}  # the preset is small enough

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        return ExpectedValueHead, {}

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        dist = self.distribution(self.online, batch.obs)  # [B, A, 1]: Q(x, .)
        q_taken = dist.for_actions(action).values[:, 0, 0]  # [B]
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, 1]
            double = self.config.double_dqn
            select = self.distribution(self.online, batch.next_obs) if double else next_dist
            q_next = next_dist.for_actions(greedy_action(select)).values.squeeze(1)  # [B, 1]
            y = bellman_target(batch.reward, batch.discount, q_next)[:, 0]  # [B], Algorithm 1
        per_sample = huber_loss(q_taken, y, self.config.huber_kappa)  # [B]
        return LossOutput(per_sample=per_sample, q_taken=q_taken.detach())
