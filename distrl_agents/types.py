"""Small data types passed between replay, agents and the training loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


class LearnResult:
    """What one gradient step of an agent returns.

    Attributes:
        loss: ``[B]`` per-sample loss before importance weighting (detached), the new priorities
            for prioritized replay.
        metric_names: names of the scalar metrics for logging, without prefix (``loss``,
            ``q_mean``, ...); the loop logs them under ``losses/``.
        metric_values: ``[M]`` fp32 tensor of those metrics on the training device. Kept on the
            device so that an update does not wait for the accelerator: the loop sums it there
            and reads it back once per log period.
    """

    def __init__(self, loss: Tensor, *, metric_names: Sequence[str], metric_values: Tensor) -> None:
        if metric_values.shape != (len(metric_names),):
            raise ValueError(
                f"metric_values has shape {tuple(metric_values.shape)}, expected "
                f"({len(metric_names)},) for {list(metric_names)}"
            )
        self.loss = loss
        self.metric_names = tuple(metric_names)
        self.metric_values = metric_values
        self._metrics: dict[str, float] | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics as floats (reading ``metric_values`` back from the device, once)."""
        if self._metrics is None:
            self._metrics = dict(zip(self.metric_names, self.metric_values.tolist()))
        return self._metrics

    def __repr__(self) -> str:
        return f"LearnResult(loss={self.loss!r}, metric_names={self.metric_names!r})"
