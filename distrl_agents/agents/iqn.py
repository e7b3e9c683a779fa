"""IQN (Dabney et al. 2018b): implicit quantile head, sampled taus, quantile Huber loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least
from distrl_agents.agents.targets import bellman_target, greedy_action
from distrl_agents.losses import quantile_huber_loss
from distrl_agents.networks import ImplicitQuantileHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class IQNConfig(AgentConfig):
    """IQN's hyperparameters (Dabney et al. 2018b, Sec. 4; optimiser: Dopamine's iqn.gin)."""

    num_tau_samples: int = 64
    """``N``, online taus per update."""
    num_tau_prime_samples: int = 64
    """``N'``, target taus per update."""
    num_quantile_samples: int = 32
    """``K``, taus for acting and for the bootstrap action ``a*``."""
    embedding_dim: int = 64
    """``n``, the cosine embedding size."""
    kappa: float = 1.0
    """Huber threshold of the quantile Huber loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        counts = ("num_tau_samples", "num_tau_prime_samples", "num_quantile_samples")
        check_at_least(self, 1, *counts, "embedding_dim")
        check_at_least(self, 0, "kappa")


class IQNAgent(Agent):
    """Implicit quantile networks.

    Loss (Dabney et al. 2018b, Eq. 3 / Algorithm 1): ``N`` online taus, ``N'`` target taus,
    ``delta_ij = r + gamma^n Z_{tau'_j}(x', a*) - Z_{tau_i}(x, a)``,
    ``a* = argmax_a 1/K sum_k Z_{tau~_k}(x', a)`` with ``K`` fresh taus (the acting policy).
    """

    name = "iqn"
    Config = IQNConfig
    config: IQNConfig
    test_sizes: ClassVar[dict[str, Any]] = {
        "num_tau_samples": 8,
        "num_tau_prime_samples": 8,
        "num_quantile_samples": 8,
    }

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        return ImplicitQuantileHead, {
            "num_quantiles": self.config.num_quantile_samples,
            "embedding_dim": self.config.embedding_dim,
        }

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        c = self.config
        dist = self.distribution(self.online, batch.obs, num_quantiles=c.num_tau_samples)
        z_taken = dist.for_actions(action).values.squeeze(1)  # [B, N] at N sampled taus
        with torch.no_grad():
            next_feats = self.features(self.target, batch.next_obs)
            next_dist = self.head_distribution(  # [B, A, N'] at N' fresh taus
                self.target, next_feats, num_quantiles=c.num_tau_prime_samples
            )
            select = (  # [B, A, K] at K fresh taus: the acting policy's estimate
                self.distribution(self.online, batch.next_obs)
                if c.double_dqn
                else self.head_distribution(self.target, next_feats)
            )
            z_next = next_dist.for_actions(greedy_action(select)).values.squeeze(1)  # [B, N']
            target = bellman_target(batch.reward, batch.discount, z_next)  # [B, N'], Alg. 1
        assert dist.taus is not None  # the implicit head returns its taus [B, N]
        per_sample = quantile_huber_loss(z_taken, target, dist.taus, c.kappa)  # Eq. 3
        return LossOutput(per_sample=per_sample, q_taken=z_taken.detach().mean(-1))
