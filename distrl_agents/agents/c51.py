"""C51 (Bellemare et al. 2017): categorical head, projected distributional Bellman target,
cross-entropy loss."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F

from distrl_agents.agents.base import Agent, LossOutput, check_hparam
from distrl_agents.losses import categorical_cross_entropy, categorical_projection
from distrl_agents.networks import CategoricalHead
from distrl_agents.types import Batch


class C51Agent(Agent):
    """Categorical DQN.

    Target (Bellemare et al. 2017, Algorithm 1): ``T z_j = r + gamma^n z_j`` with probabilities
    ``p_j(x', a*)``, projected onto the support (Eq. 7); loss ``-sum_i m_i log p_i(x, a)``.

    Args:
        num_atoms: ``K`` support size (51).
        v_min, v_max: support bounds.
        **kwargs: shared ``Agent`` arguments.
    """

    name = "c51"

    def __init__(
        self,
        *,
        num_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        lr: float = 2.5e-4,
        optimizer_eps: float = 0.01 / 32,
        **kwargs: Any,
    ) -> None:
        self.num_atoms = int(num_atoms)
        self.v_min = float(v_min)
        self.v_max = float(v_max)
        super().__init__(
            lr=lr,
            optimizer_eps=optimizer_eps,
            agent_hparams={"num_atoms": self.num_atoms, "v_min": self.v_min, "v_max": self.v_max},
            **kwargs,
        )

    def _validate(self) -> None:
        check_hparam(self.num_atoms >= 2, "num_atoms", f"must be >= 2, got {self.num_atoms}")
        check_hparam(
            self.v_min < self.v_max, "v_min", f"must be < v_max, got {self.v_min} >= {self.v_max}"
        )

    def head_spec(self) -> tuple[str, dict[str, Any]]:
        return "categorical", {
            "num_atoms": self.num_atoms,
            "v_min": self.v_min,
            "v_max": self.v_max,
        }

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        head = cast(CategoricalHead, self.online.head)  # head_spec() builds a categorical head
        feats = self.features(self.online, batch.obs)
        with self.autocast():
            logits = head.logits(feats)  # [B, A, K] fp32
        idx = action.view(-1, 1, 1).expand(-1, 1, self.num_atoms)
        log_p = F.log_softmax(logits.float().gather(1, idx).squeeze(1), dim=-1)  # [B, K] fp32
        support = head.support  # [K]
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, K]
            a_star = self.next_actions(batch.next_obs, next_dist)
            p_next = next_dist.for_actions(a_star).probs.squeeze(1)  # [B, K]
            reward = batch.reward.to(self.device).float().unsqueeze(1)
            discount = batch.discount.to(self.device).float().unsqueeze(1)
            atoms = reward + discount * support.unsqueeze(0)  # T z_j, Bellemare et al. 2017 Alg. 1
            m = categorical_projection(atoms, p_next, support)  # Eq. 7
        per_sample = categorical_cross_entropy(m, log_p)
        q_taken = (log_p.detach().exp() * support).sum(-1)
        return LossOutput(per_sample=per_sample, q_taken=q_taken)
