"""HL-Gauss (Farebrother et al. 2024, "Stop Regressing: Training Value Functions via
Classification for Scalable Deep RL", ICML): a categorical value head trained by cross-entropy
against the histogram of a Gaussian centred on the scalar TD target.

- **Head**: C51's ``CategoricalHead`` on the bin centres: ``m`` bins of width
  ``zeta = (v_max - v_min) / m`` on ``[v_min, v_max]``, ``Q(x, a) = sum_i p_i(x, a) z_i``.
- **Target**: the scalar ``y = r + gamma^n Q_target(x', a*)`` (``a*`` greedy on the target
  network's Q, or the online network's with ``double_dqn``), clipped to the support, turned into
  a histogram: HL-Gauss with ``sigma = sigma_ratio * zeta`` (``target: hlgauss``) or two-hot
  (``target: twohot``), ``distrl_agents/losses/hlgauss.py``.
- **Loss**: ``-sum_i p_i(y) log p_i(x, a)``.

It is not a distributional agent in C51's sense: the target is a histogram of the scalar
``y``, not the projected bootstrap distribution; the head's distribution is read for its mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import AgentConfig, check_at_least, check_hparam, check_positive
from distrl_agents.agents.targets import at_actions, bellman_target, greedy_action
from distrl_agents.losses import categorical_cross_entropy
from distrl_agents.losses.hlgauss import hl_gauss_probs, two_hot_probs
from distrl_agents.networks import CategoricalHead
from distrl_agents.types import Batch

#: Target histograms: ``hlgauss`` (Farebrother et al. 2024's recommendation) or ``twohot``.
TARGETS = ("hlgauss", "twohot")


@dataclass(frozen=True)
class HLGaussConfig(AgentConfig):
    """HL-Gauss's hyperparameters. ``sigma_ratio`` is Farebrother et al. 2024's recommendation;
    the support and the optimiser are C51's preset (docs/agents.md, HL-Gauss, says which values
    could not be checked against the paper)."""

    num_bins: int = 51
    """``m``, the number of bins (atoms at the bin centres)."""
    v_min: float = -10.0
    """Lower edge of the first bin."""
    v_max: float = 10.0
    """Upper edge of the last bin."""
    sigma_ratio: float = 0.75
    """``sigma / zeta``: the Gaussian's standard deviation in bin widths (HL-Gauss only)."""
    target: str = "hlgauss"
    """The target histogram, one of ``TARGETS``."""
    lr: float = 2.5e-4
    optimizer_eps: float = 0.01 / 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 2, "num_bins")
        check_hparam(
            self.v_min < self.v_max, "v_min", f"must be < v_max, got {self.v_min} >= {self.v_max}"
        )
        check_positive(self, "sigma_ratio")
        check_hparam(
            self.target in TARGETS, "target", f"must be one of {list(TARGETS)}, got {self.target!r}"
        )

    @property
    def bin_width(self) -> float:
        """``zeta = (v_max - v_min) / m``."""
        return (self.v_max - self.v_min) / self.num_bins


class HLGaussAgent(Agent):
    """Value classification with HL-Gauss (or two-hot) targets (Farebrother et al. 2024)."""

    name = "hlgauss"
    Config = HLGaussConfig
    config: HLGaussConfig
    test_sizes: ClassVar[dict[str, Any]] = {}  # the preset is small enough

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        c, half = self.config, self.config.bin_width / 2
        # The atoms are the bin centres: v_min + zeta / 2 .. v_max - zeta / 2.
        return CategoricalHead, {
            "num_atoms": c.num_bins,
            "v_min": c.v_min + half,
            "v_max": c.v_max - half,
        }

    def compute_loss(self, batch: Batch) -> LossOutput:
        c = self.config
        action = batch.action.to(self.device)
        head = cast(CategoricalHead, self.online.head)  # head_spec() builds a categorical head
        centres = head.support  # [m]
        feats = self.features(self.online, batch.obs)
        with self.autocast():
            logits = head.logits(feats)  # [B, A, m] fp32
        log_p = F.log_softmax(at_actions(logits.float(), action), dim=-1)  # [B, m] fp32
        with torch.no_grad():
            next_dist = self.distribution(self.target, batch.next_obs)  # [B, A, m]
            select = self.distribution(self.online, batch.next_obs) if c.double_dqn else next_dist
            q_next = next_dist.for_actions(greedy_action(select)).q_values()  # [B, 1]
            y = bellman_target(batch.reward, batch.discount, q_next)[:, 0]  # [B] scalar target
            if c.target == "hlgauss":
                edges = torch.linspace(c.v_min, c.v_max, c.num_bins + 1, device=centres.device)
                probs = hl_gauss_probs(
                    y.clamp(c.v_min, c.v_max), edges, c.sigma_ratio * c.bin_width
                )
            else:
                probs = two_hot_probs(y, centres)  # clips y to [z_0, z_{m-1}]
        per_sample = categorical_cross_entropy(probs, log_p)  # [B]
        q_taken = (log_p.detach().exp() * centres).sum(-1)  # [B]
        return LossOutput(per_sample=per_sample, q_taken=q_taken)
