"""Losses: C51 projection + cross-entropy, the shared quantile Huber loss, FQF fraction loss,
DQN Huber loss, the expectile loss. All return per-sample ``[B]`` fp32 losses
(the replay priorities)."""

from __future__ import annotations

from distrl_agents.losses.categorical import categorical_cross_entropy, categorical_projection
from distrl_agents.losses.dqn import huber_loss
from distrl_agents.losses.expectile import expectile_loss
from distrl_agents.losses.fraction import fqf_fraction_loss
from distrl_agents.losses.quantile import huber, quantile_huber_loss

__all__ = [
    "categorical_cross_entropy",
    "categorical_projection",
    "expectile_loss",
    "fqf_fraction_loss",
    "huber",
    "huber_loss",
    "quantile_huber_loss",
]
