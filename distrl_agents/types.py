"""Small data types passed between replay, agents and the training loop."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Batch:
    """A replay batch on the training device.

    Attributes:
        obs: ``[B, S, *frame]`` observations (uint8 frames for Atari; ``S`` = stack size).
        action: ``[B]`` int64 actions taken in ``obs``.
        reward: ``[B]`` float32 n-step discounted sum of (clipped) rewards,
            ``sum_{k<m} gamma^k r_{t+k}`` where ``m <= n`` stops at a terminal or episode end.
        discount: ``[B]`` float32 bootstrap discount ``gamma^m * (1 - terminal)``; zero when the
            n-step window reached a terminal. A time-limit truncation is *not* terminal.
        next_obs: ``[B, S, *frame]`` observation ``m`` steps later (the bootstrap state).
        weights: ``[B]`` float32 importance-sampling weights (ones for uniform sampling).
        indices: ``[B]`` int64 buffer indices, for ``update_priorities``.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    discount: Tensor
    next_obs: Tensor
    weights: Tensor
    indices: Tensor


@dataclass
class LearnResult:
    """What one gradient step of an agent returns.

    Attributes:
        loss: ``[B]`` per-sample loss before importance weighting (detached), the new priorities
            for prioritized replay.
        metrics: scalar metrics for logging, named without prefix (``loss``, ``q_mean``, ...);
            the loop logs them under ``losses/`` and ``agent/``.
    """

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
