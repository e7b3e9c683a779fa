"""What the training loop logs: finished games, loop speed, schedules and the agents' metrics.

The tags are those listed in :mod:`distrl_agents.logging.writer`. Per agent step the loop only
counts steps and reads finished games; everything else is written once per ``logger.log_period``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch

from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score
from distrl_agents.logging.writer import MetricWriter
from distrl_agents.types import LearnResult


class MetricWindow:
    """Sums of the agents' scalar metrics since the last log point.

    The metrics (``LearnResult.metric_values``) are summed on the device and read back once, in
    :meth:`means`, so that logging costs no host-device sync per update.
    """

    def __init__(self) -> None:
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}  # metric names -> [M] sums
        self.count = 0

    def add(self, result: LearnResult) -> None:
        names, values = result.metric_names, result.metric_values.detach()
        total = self.sums.get(names)
        self.sums[names] = values.clone() if total is None else total.add_(values)
        self.count += 1

    def means(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        for names, total in self.sums.items():
            for key, value in zip(names, total.tolist()):
                sums[key] = sums.get(key, 0.0) + value
        return {k: v / max(self.count, 1) for k, v in sums.items()}


class TrainingLog:
    """The training scalars of one :meth:`Trainer.run <distrl_agents.training.loop.Trainer.run>`
    and its progress bar.

    ``window`` collects the updates' metrics between log points; :meth:`count` takes each agent
    step's finished games, :meth:`write` the periodic scalars (and starts a new window).
    """

    def __init__(self, writer: MetricWriter, game: str, progress: Any) -> None:
        self.writer = writer
        self.progress = progress
        self.game = game
        self.hns_known = has_reference_scores(game)
        self.window = MetricWindow()
        self.window_start = time.perf_counter()
        self.window_steps = 0
        self.latest_return = float("nan")
        # Agent steps of each environment's game in progress: a game that never ends (an agent
        # that learned to neither score nor lose a life) adds no point to the episodic curves,
        # so the longest is logged instead.
        self.open_game_steps: np.ndarray | None = None

    def count(self, new_steps: int, info: dict[str, Any], step: int) -> None:
        """``new_steps`` agent steps were taken (``step`` in all); log the games they ended."""
        self.window_steps += new_steps
        self.progress.update(new_steps)
        if "autoreset" in info:  # the environments that took a step (not a reset step)
            stepped = ~np.asarray(info["autoreset"], dtype=bool)
            if self.open_game_steps is None:
                self.open_game_steps = np.zeros(stepped.shape[0], dtype=np.int64)
            self.open_game_steps += stepped
        if "episode" not in info:
            return
        episode = info["episode"]
        ended = np.flatnonzero(info["_episode"])
        if self.open_game_steps is not None:
            self.open_game_steps[ended] = 0
        for i in ended:
            self.latest_return = float(episode["r"][i])
            self.writer.scalar("charts/episodic_return", self.latest_return, step)
            self.writer.scalar("charts/episodic_length", episode["l"][i], step)
            if self.hns_known:
                hns = human_normalized_score(self.game, self.latest_return)
                self.writer.scalar("charts/episodic_hns", hns, step)

    def write(self, step: int, *, epsilon: float, replay: Any, agent: Any) -> None:
        """The periodic scalars at agent step ``step``: speed, schedules, sizes and the means of
        the agents' metrics since the last log point."""
        elapsed = max(time.perf_counter() - self.window_start, 1e-9)
        sps = self.window_steps / elapsed
        w = self.writer
        w.scalar("charts/SPS", sps, step)
        w.scalar("charts/updates_per_second", self.window.count / elapsed, step)
        w.scalar("charts/epsilon", epsilon, step)
        w.scalar("charts/replay_size", len(replay), step)
        w.scalar("charts/frames", step * 4, step)
        w.scalar("charts/learning_rate", agent.config.lr, step)
        if self.open_game_steps is not None:
            w.scalar("charts/longest_open_game", int(self.open_game_steps.max()), step)
        if getattr(replay, "prioritized", False):
            w.scalar("charts/replay_beta", replay.beta, step)
        for key, value in self.window.means().items():
            w.scalar(f"losses/{key}", value, step)
        self.window = MetricWindow()
        self.window_start, self.window_steps = time.perf_counter(), 0
        self.progress.set_postfix(
            sps=f"{sps:.0f}", ret=f"{self.latest_return:.1f}", eps=f"{epsilon:.3f}", refresh=False
        )


def log_distributions(
    writer: MetricWriter, agent: Any, states: np.ndarray, action_names: Any, step: int
) -> None:
    """Pictures of the predicted return distribution of every action on the fixed ``states``
    (``[K, S, *frame]``), one figure ``distributions/state_<k>`` each."""
    from distrl_agents.evaluation.distribution_plot import distribution_figure

    with torch.no_grad():
        obs = torch.as_tensor(states)
        dist = agent.distribution(agent.online, obs)
    for k in range(obs.shape[0]):
        fig = distribution_figure(dist, k, frame=states[k, -1], action_names=action_names)
        writer.figure(f"distributions/state_{k}", fig, step)


def markdown_table(values: dict[str, Any]) -> str:
    """``values`` as a two-column Markdown table (TensorBoard's text tab renders it)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in values.items())
    return "| hyperparameter | value |\n|---|---|\n" + rows


def progress_bar(total: int, initial: int, enabled: bool, label: str) -> Any:
    """A tqdm bar over agent steps (refreshed at most every 30 s when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        disable=not enabled,
        desc=label,
    )
