"""MMD-DQN (Nguyen-Tang, Gupta & Venkatesh 2021): unordered particles, squared-MMD loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least, check_positive
from distrl_agents.agents.targets import bellman_target, greedy_action
from distrl_agents.losses.mmd import MMD_BANDWIDTHS, mmd_loss
from distrl_agents.networks.heads import ParticleHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class MMDConfig(AgentConfig):
    """MMD-DQN's hyperparameters (the authors' ``configs/mmd_atari.gin``, thanhnguyentang/mmdrl).

    The shared defaults (Adam, lr 5e-5, epsilon 0.01 / 32, no gradient clipping, target-network
    bootstrap action) are the authors' settings too.
    """

    num_particles: int = 200
    """``N``, the number of particles per action (``MMDAgent.num_atoms = 200``)."""
    bandwidth_scale: float = 1.0
    """Multiplies every ``h`` of the kernel mixture ``sum_h exp(-(x - y)^2 / h)``, ``h`` in
    ``1..10`` (the authors' ``'mixture'`` bandwidths, for clipped rewards). Returns scaled by
    ``c`` keep the same kernel values with ``c^2``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 1, "num_particles")
        check_positive(self, "bandwidth_scale")

    @property
    def bandwidths(self) -> tuple[float, ...]:
        """The kernel bandwidths ``h`` after ``bandwidth_scale``."""
        return tuple(h * self.bandwidth_scale for h in MMD_BANDWIDTHS)


class MMDAgent(Agent):
    """Moment-matching DQN.

    Target (authors' ``_build_target_particles``): ``T z_j = r + gamma^n z_j(x', a*)``,
    ``a* = argmax_a mean_j z_j(x', a)`` of the target network; loss: the biased squared MMD
    between the taken action's ``N`` particles and the ``N`` target particles with the Gaussian
    kernel mixture (``losses/mmd.py``).
    """

    name = "mmd"
    Config = MMDConfig
    config: MMDConfig
    test_sizes: ClassVar[dict[str, Any]] = {"num_particles": 16}

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        return ParticleHead, {"num_particles": self.config.num_particles}

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        dist = self.distribution(self.online, batch.obs)  # [B, A, N]
        z = dist.for_actions(action).values.squeeze(1)  # [B, N]
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, N]
            double = self.config.double_dqn
            select = self.distribution(self.online, batch.next_obs) if double else next_dist
            z_next = next_dist.for_actions(greedy_action(select)).values.squeeze(1)  # [B, N]
            target = bellman_target(batch.reward, batch.discount, z_next)  # [B, N]
        per_sample = mmd_loss(z, target, self.config.bandwidths)  # [B]
        return LossOutput(per_sample=per_sample, q_taken=z.detach().mean(-1))
