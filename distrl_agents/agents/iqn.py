"""IQN (Dabney et al. 2018b): implicit quantile head, sampled taus, quantile Huber loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch

from distrl_agents.agents.base import Agent, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least
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

    def head_spec(self) -> tuple[str, dict[str, Any]]:
        return "implicit", {
            "num_quantiles": self.config.num_quantile_samples,
            "embedding_dim": self.config.embedding_dim,
        }

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        # head_spec() builds implicit quantile heads (online and target).
        head = cast(ImplicitQuantileHead, self.online.head)
        target_head = cast(ImplicitQuantileHead, self.target.head)
        feats = self.features(self.online, batch.obs)
        B = feats.shape[0]
        taus = head.sample_taus(
            B, self.config.num_tau_samples, feats.device, self.generator
        )  # [B, N]
        with self.autocast():
            z = head.quantile_values(feats, taus)  # [B, A, N]
        idx = action.view(-1, 1, 1).expand(-1, 1, z.shape[-1])
        z_taken = z.gather(1, idx).squeeze(1)  # [B, N]
        with torch.no_grad():
            next_feats = self.features(self.target, batch.next_obs)
            tau_prime = head.sample_taus(
                B, self.config.num_tau_prime_samples, feats.device, self.generator
            )
            with self.autocast():
                z_next = target_head.quantile_values(next_feats, tau_prime)  # [B, A, N']
                select = None
                if not self.config.double_dqn:
                    select = self.target.head(next_feats, generator=self.generator)  # K taus
            a_star = self.next_actions(batch.next_obs, select)
            idx_next = a_star.view(-1, 1, 1).expand(-1, 1, z_next.shape[-1])
            z_next = z_next.gather(1, idx_next).squeeze(1)  # [B, N']
            reward = batch.reward.to(self.device).float().unsqueeze(1)
            discount = batch.discount.to(self.device).float().unsqueeze(1)
            target = reward + discount * z_next  # Dabney et al. 2018b, Algorithm 1
        per_sample = quantile_huber_loss(z_taken, target, taus, self.config.kappa)  # Eq. 3
        return LossOutput(per_sample=per_sample, q_taken=z_taken.detach().mean(-1))
