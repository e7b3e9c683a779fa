"""IQN (Dabney et al. 2018b): implicit quantile head, sampled taus, quantile Huber loss."""

from __future__ import annotations

from typing import Any, cast

import torch

from distrl_agents.agents.base import Agent, LossOutput, check_hparam
from distrl_agents.losses import quantile_huber_loss
from distrl_agents.networks import ImplicitQuantileHead
from distrl_agents.types import Batch


class IQNAgent(Agent):
    """Implicit quantile networks.

    Loss (Dabney et al. 2018b, Eq. 3 / Algorithm 1): ``N`` online taus, ``N'`` target taus,
    ``delta_ij = r + gamma^n Z_{tau'_j}(x', a*) - Z_{tau_i}(x, a)``,
    ``a* = argmax_a 1/K sum_k Z_{tau~_k}(x', a)`` with ``K`` fresh taus (the acting policy).

    Args:
        num_tau_samples: ``N`` (64).
        num_tau_prime_samples: ``N'`` (64).
        num_quantile_samples: ``K`` (32), used for acting and for ``a*``.
        embedding_dim: cosine embedding size ``n`` (64).
        kappa: Huber threshold (1).
        **kwargs: shared ``Agent`` arguments.
    """

    name = "iqn"

    def __init__(
        self,
        *,
        num_tau_samples: int = 64,
        num_tau_prime_samples: int = 64,
        num_quantile_samples: int = 32,
        embedding_dim: int = 64,
        kappa: float = 1.0,
        lr: float = 5e-5,
        optimizer_eps: float = 0.01 / 32,
        **kwargs: Any,
    ) -> None:
        self.num_tau_samples = int(num_tau_samples)
        self.num_tau_prime_samples = int(num_tau_prime_samples)
        self.num_quantile_samples = int(num_quantile_samples)
        self.embedding_dim = int(embedding_dim)
        self.kappa = float(kappa)
        super().__init__(
            lr=lr,
            optimizer_eps=optimizer_eps,
            agent_hparams={
                "num_tau_samples": self.num_tau_samples,
                "num_tau_prime_samples": self.num_tau_prime_samples,
                "num_quantile_samples": self.num_quantile_samples,
                "embedding_dim": self.embedding_dim,
                "kappa": self.kappa,
            },
            **kwargs,
        )

    def _validate(self) -> None:
        for field in (
            "num_tau_samples",
            "num_tau_prime_samples",
            "num_quantile_samples",
            "embedding_dim",
        ):
            value = getattr(self, field)
            check_hparam(value >= 1, field, f"must be >= 1, got {value}")
        check_hparam(self.kappa >= 0, "kappa", f"must be >= 0, got {self.kappa}")

    def head_spec(self) -> tuple[str, dict[str, Any]]:
        return "implicit", {
            "num_quantiles": self.num_quantile_samples,
            "embedding_dim": self.embedding_dim,
        }

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        # head_spec() builds implicit quantile heads (online and target).
        head = cast(ImplicitQuantileHead, self.online.head)
        target_head = cast(ImplicitQuantileHead, self.target.head)
        feats = self.features(self.online, batch.obs)
        B = feats.shape[0]
        taus = head.sample_taus(B, self.num_tau_samples, feats.device, self.generator)  # [B, N]
        with self.autocast():
            z = head.quantile_values(feats, taus)  # [B, A, N]
        idx = action.view(-1, 1, 1).expand(-1, 1, z.shape[-1])
        z_taken = z.gather(1, idx).squeeze(1)  # [B, N]
        with torch.no_grad():
            next_feats = self.features(self.target, batch.next_obs)
            tau_prime = head.sample_taus(
                B, self.num_tau_prime_samples, feats.device, self.generator
            )
            with self.autocast():
                z_next = target_head.quantile_values(next_feats, tau_prime)  # [B, A, N']
                select = None
                if not self.double_dqn:
                    select = self.target.head(next_feats, generator=self.generator)  # K taus
            a_star = self.next_actions(batch.next_obs, select)
            idx_next = a_star.view(-1, 1, 1).expand(-1, 1, z_next.shape[-1])
            z_next = z_next.gather(1, idx_next).squeeze(1)  # [B, N']
            reward = batch.reward.to(self.device).float().unsqueeze(1)
            discount = batch.discount.to(self.device).float().unsqueeze(1)
            target = reward + discount * z_next  # Dabney et al. 2018b, Algorithm 1
        per_sample = quantile_huber_loss(z_taken, target, taus, self.kappa)  # Eq. 3
        return LossOutput(per_sample=per_sample, q_taken=z_taken.detach().mean(-1))
