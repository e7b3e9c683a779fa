"""Metric writer: TensorBoard event files, or nothing when TensorBoard logging is off.

Tag vocabulary (x axis: agent steps; one agent step = 4 frames):

``charts/episodic_return``, ``charts/episodic_length``, ``charts/episodic_hns``
    raw whole-game score (all lives, unclipped), its length in agent steps, its human-normalized
    score (Atari-57 games only), one point per finished training game.
``charts/longest_open_game``
    agent steps of the longest training game still being played (a resumed run starts new
    games). A game that never ends (an agent that has learned to neither score nor lose a
    life) adds no point to the episodic curves; this is where it shows.
``charts/SPS``, ``charts/updates_per_second``, ``charts/epsilon``, ``charts/replay_size``,
``charts/frames``, ``charts/learning_rate``, ``charts/replay_beta``
    loop speed (agent steps/s), schedules and sizes.
``losses/loss``, ``losses/q_mean``, ``losses/grad_norm``, ``losses/<agent metric>``
    means over the updates since the last point; agent-specific ones include FQF's
    ``losses/fraction_entropy`` and ``losses/fraction_loss``.
``eval/episodic_return``, ``eval/episodic_return_stderr``, ``eval/hns``, ``eval/episodes``
    periodic greedy evaluation on separate environments.
``distributions/state_<k>``
    pictures of the predicted return distribution of every action on fixed states.
``config``, ``agent/hparams``
    the resolved configuration and the agent's hyperparameters (text).
"""

from __future__ import annotations

import os
from typing import Any


class MetricWriter:
    """Thin wrapper over ``torch.utils.tensorboard.SummaryWriter``; ``log_dir=None`` disables it."""

    def __init__(self, log_dir: str | os.PathLike[str] | None, *, purge_step: int | None = None):
        self._writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events at or after it (a resumed run passes its checkpoint step
            # + 1), so its curves continue without duplicate points from the stretch after its
            # last checkpoint.
            self._writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def scalar(self, tag: str, value: Any, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, float(value), int(step))

    def text(self, tag: str, text: str, step: int) -> None:
        if self._writer is not None:
            self._writer.add_text(tag, text, int(step))

    def figure(self, tag: str, fig: Any, step: int) -> None:
        if self._writer is not None:
            self._writer.add_figure(tag, fig, int(step), close=True)
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
