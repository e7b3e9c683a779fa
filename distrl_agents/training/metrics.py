"""What the training loop logs: finished games, loop speed, schedules and the agents' metrics.

The tags are those listed in :mod:`distrl_agents.monitoring.writer`. Per agent step the loop only
counts steps and reads finished games; everything else is written once per ``logger.log_period``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch

from distrl_agents.evaluation.evaluator import EvalResult
from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score
from distrl_agents.monitoring.writer import MetricWriter
from distrl_agents.types import LearnResult

#: Longest time between two refreshes of the progress bar's postfix (seconds).
POSTFIX_SECONDS = 10.0


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

    The bar never counts past its total (the last step of ``num_envs`` games may overshoot
    ``total_steps``), and its postfix (speed, last return, epsilon) is refreshed at every log
    point and at least every :data:`POSTFIX_SECONDS` between them, so that a resumed run, or
    one with a long log period, shows its speed without waiting for a log point.
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
        self.latest_epsilon: float | None = None
        self._postfix_at = self.window_start + POSTFIX_SECONDS
        # Agent steps of each environment's game in progress: a game that never ends (an agent
        # that learned to neither score nor lose a life) adds no point to the episodic curves,
        # so the longest is logged instead.
        self.open_game_steps: np.ndarray | None = None

    def count(self, new_steps: int, info: dict[str, Any], step: int) -> None:
        """``new_steps`` agent steps were taken (``step`` in all); log the games they ended."""
        self.window_steps += new_steps
        total = getattr(self.progress, "total", None)
        shown = getattr(self.progress, "n", 0)
        self.progress.update(new_steps if not total else max(0, min(new_steps, total - shown)))
        if self.window_steps and time.perf_counter() >= self._postfix_at:
            elapsed = max(time.perf_counter() - self.window_start, 1e-9)
            self._set_postfix(self.window_steps / elapsed)
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
        self.latest_epsilon = epsilon
        self._set_postfix(sps)

    def _set_postfix(self, sps: float) -> None:
        """The bar's postfix: speed, the last game's return and epsilon (once known)."""
        postfix = {"sps": f"{sps:.0f}", "ret": f"{self.latest_return:.1f}"}
        if self.latest_epsilon is not None:
            postfix["eps"] = f"{self.latest_epsilon:.3f}"
        self.progress.set_postfix(**postfix, refresh=False)
        self._postfix_at = time.perf_counter() + POSTFIX_SECONDS


def eval_line(label: str, step: int, result: EvalResult) -> str:
    """The line printed for a periodic evaluation, prefixed with the run's ``label`` (game, agent,
    seed and run settings) so that the lines of a sweep's jobs can be told apart."""
    head = f"{label}: eval @ {step:,} agent steps: "
    if not result.games:
        return head + (
            f"no game finished within {result.agent_steps:,} agent steps (trainer.eval_steps), "
            "so nothing was scored"
        )
    hns = result.hns
    line = head + f"{result.games} games, raw score {result.mean_return:.1f}"
    if hns is not None:
        line += f", human-normalized {hns:.3f}"
    if result.truncated_games:
        line += (
            f" ({result.truncated_games} of {result.games} games cut at the frame cap of "
            f"{result.frame_cap:,} frames)"
        )
    return line


def long_eval_game_line(label: str, env: int, steps: int, frameskip: int, cap_frames: int) -> str:
    """The line printed once when a game of a periodic evaluation runs unusually long (it
    holds the evaluation up until it ends or reaches the frame cap)."""
    return (
        f"{label}: eval: the game of evaluation env {env} has run {steps:,} agent steps "
        f"({steps * frameskip:,} frames) without ending; the frame cap ends it at "
        f"{cap_frames:,} frames ({cap_frames // frameskip:,} agent steps)"
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
