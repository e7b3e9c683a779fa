"""C51 (Bellemare et al. 2017): categorical head, projected distributional Bellman target,
cross-entropy loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least, check_hparam
from distrl_agents.agents.targets import at_actions, bellman_target, greedy_action
from distrl_agents.losses import categorical_cross_entropy, categorical_projection
from distrl_agents.networks import CategoricalHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class C51Config(AgentConfig):
    """C51's hyperparameters (Bellemare et al. 2017, Sec. 5)."""

    num_atoms: int = 51
    """``K``, the support size."""
    v_min: float = -10.0
    """Lowest atom of the support."""
    v_max: float = 10.0
    """Highest atom of the support."""
    lr: float = 2.5e-4
    optimizer_eps: float = 0.01 / 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 2, "num_atoms")
        check_hparam(
            self.v_min < self.v_max, "v_min", f"must be < v_max, got {self.v_min} >= {self.v_max}"
        )


class C51Agent(Agent):
    """Categorical DQN.

    Target (Bellemare et al. 2017, Algorithm 1): ``T z_j = r + gamma^n z_j`` with probabilities
    ``p_j(x', a*)``, projected onto the support (Eq. 7); loss ``-sum_i m_i log p_i(x, a)``.
    """

    name = "c51"
    Config = C51Config
    config: C51Config
    test_sizes: ClassVar[dict[str, Any]] = {}  # the preset is small enough

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        c = self.config
        return CategoricalHead, {"num_atoms": c.num_atoms, "v_min": c.v_min, "v_max": c.v_max}

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        head = cast(CategoricalHead, self.online.head)  # head_spec() builds a categorical head
        support = head.support  # [K]
        feats = self.features(self.online, batch.obs)
        with self.autocast():
            logits = head.logits(feats)  # [B, A, K] fp32
        log_p = F.log_softmax(at_actions(logits.float(), action), dim=-1)  # [B, K] fp32
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, K]
            double = self.config.double_dqn
            select = self.distribution(self.online, batch.next_obs) if double else next_dist
            p_next = next_dist.for_actions(greedy_action(select)).probs.squeeze(1)  # [B, K]
            atoms = bellman_target(batch.reward, batch.discount, support)  # [B, K]: T z_j, Alg. 1
            m = categorical_projection(atoms, p_next, support)  # [B, K], Eq. 7
        per_sample = categorical_cross_entropy(m, log_p)  # [B]
        q_taken = (log_p.detach().exp() * support).sum(-1)  # [B]
        return LossOutput(per_sample=per_sample, q_taken=q_taken)
