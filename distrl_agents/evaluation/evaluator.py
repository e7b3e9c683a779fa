"""Greedy evaluation: play whole games with a small epsilon and report raw scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score


@dataclass
class EvalResult:
    """Raw whole-game scores of one evaluation (unclipped, all lives)."""

    game: str
    episode_returns: list[float]
    episode_lengths: list[int]
    agent_steps: int
    frames_per_step: int = 4
    observations: list[np.ndarray] = field(default_factory=list, repr=False)
    interrupted: bool = False

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.episode_returns)) if self.episode_returns else float("nan")

    @property
    def stderr_return(self) -> float:
        n = len(self.episode_returns)
        if n < 2:
            return float("nan")
        return float(np.std(self.episode_returns, ddof=1) / np.sqrt(n))

    @property
    def hns(self) -> float | None:
        if not self.episode_returns or not has_reference_scores(self.game):
            return None
        return float(human_normalized_score(self.game, self.mean_return))


def evaluate(
    act: Callable[[np.ndarray, float], np.ndarray],
    env,
    *,
    episodes: int,
    max_steps: int | None = None,
    epsilon: float = 0.001,
    record_env: int | None = None,
    on_step: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int | None = None,
) -> EvalResult:
    """Play ``episodes`` whole games on the vector ``env`` (an :class:`~distrl_agents.envs.AtariEnv`).

    Episodes are spread evenly over the environments (env ``i`` counts at most its share), so short
    games are not over-represented; play stops when every env has played its share or after
    ``max_steps`` agent steps, whichever comes first (unfinished games are not counted).

    Args:
        act: ``act(obs [N, 4, 84, 84], epsilon) -> actions [N]``, e.g. ``agent.act``.
        record_env: when set, the observations seen by that env during its first game are kept
            in ``EvalResult.observations`` (for videos and distribution pictures).
        on_step: called with the number of agent steps after each vector step (progress bars).
        should_stop: polled every step; when it returns True play stops at once (the result then
            holds the games finished so far and ``interrupted`` is set).
        seed: reset the environments with this seed (env ``i``: ``seed + i``) so that every
            evaluation can start from fresh games; ``None`` uses the environments' own seed.
    """
    n = env.num_envs
    tally = _Tally(episodes, n)
    frames: list[np.ndarray] = []
    recording = record_env is not None
    obs, _ = env.reset(seed=seed)
    steps = 0
    interrupted = False
    while not tally.complete() and (max_steps is None or steps < max_steps):
        if should_stop is not None and should_stop():
            interrupted = True
            break
        if recording:
            frames.append(obs[record_env, -1].copy())
        obs, _, _, _, info = env.step(act(obs, epsilon))
        steps += int(n)
        if on_step is not None:
            on_step(int(n))
        if "episode" in info:
            finished = np.flatnonzero(info["_episode"])
            recording = recording and record_env not in finished
            tally.count(finished, info["episode"])
    return EvalResult(
        game=env.game,
        episode_returns=tally.returns,
        episode_lengths=tally.lengths,
        agent_steps=steps,
        frames_per_step=env.spec_info.frameskip,
        observations=frames,
        interrupted=interrupted,
    )


class _Tally:
    """Finished games counted per environment, each up to its even share of ``episodes``."""

    def __init__(self, episodes: int, num_envs: int) -> None:
        self.quota = np.full(num_envs, episodes // num_envs)
        self.quota[: episodes % num_envs] += 1
        self.done = np.zeros(num_envs, dtype=np.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def complete(self) -> bool:
        return bool((self.done >= self.quota).all())

    def count(self, envs: np.ndarray, episode: dict[str, np.ndarray]) -> None:
        """Record the games that just ended in ``envs`` (``episode``: the vector env's
        ``info["episode"]``, returns ``r`` and lengths ``l``)."""
        for i in envs:
            if self.done[i] < self.quota[i]:
                self.returns.append(float(episode["r"][i]))
                self.lengths.append(int(episode["l"][i]))
                self.done[i] += 1
