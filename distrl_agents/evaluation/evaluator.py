"""Greedy evaluation: play whole games with a small epsilon and report raw scores.

:func:`evaluate` is quiet: whoever calls it says what is going on through its callbacks
(``on_step`` and ``on_game`` for progress bars, ``on_long_game`` for a game that runs unusually
long, e.g. Breakout under sticky actions by an agent that never presses FIRE, which only ends at
the frame cap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score

#: A game is unusually long (``evaluate``'s ``on_long_game``) after this many agent steps
#: (40,000 frames at frameskip 4, over 11 minutes of play) ...
LONG_GAME_STEPS = 10_000
#: ... or after five times the median length of the games finished so far, but never under this.
LONG_GAME_FLOOR = 1_000


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
    #: per counted game: whether the frame cap ended it (``truncated``), not the game itself
    episode_truncated: list[bool] = field(default_factory=list)
    #: the environments' frame cap per game (``max_num_frames_per_episode``), when known
    frame_cap: int | None = None
    #: the actions of the recorded env (``record_env``) along ``observations``: ``actions[t]``
    #: was taken on ``observations[t]``; with ``record_seed`` they replay that game exactly
    actions: list[int] = field(default_factory=list, repr=False)
    #: the seed the recorded env's game was reset with (None when nothing was recorded)
    record_seed: int | None = None

    @property
    def games(self) -> int:
        """Counted (finished) games."""
        return len(self.episode_returns)

    @property
    def truncated_games(self) -> int:
        """Counted games that the frame cap ended (their scores are those of a cut game)."""
        return int(sum(self.episode_truncated))

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
    on_game: Callable[[int], None] | None = None,
    on_long_game: Callable[[int, int], None] | None = None,
    long_game_steps: int = LONG_GAME_STEPS,
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
        on_game: called with the number of games counted so far whenever that number grows.
        on_long_game: called once per game with ``(env index, agent steps so far)`` when a game
            that will be counted runs unusually long: ``long_game_steps`` agent steps, or five
            times the median length of the games finished so far when that is shorter (but
            never under :data:`LONG_GAME_FLOOR`).
        long_game_steps: see ``on_long_game``.
    """
    n = env.num_envs
    tally = _Tally(episodes, n)
    frames: list[np.ndarray] = []
    actions: list[int] = []
    recording = record_env is not None
    obs, _ = env.reset(seed=seed)
    steps = 0
    interrupted = False
    cut = np.zeros(n, dtype=bool)  # the game that ended on the last step was cut by the cap
    open_steps = np.zeros(n, dtype=np.int64)  # agent steps of each env's game in progress
    flagged = np.zeros(n, dtype=bool)  # on_long_game was called for this env's game
    while not tally.complete() and (max_steps is None or steps < max_steps):
        if should_stop is not None and should_stop():
            interrupted = True
            break
        chosen = act(obs, epsilon)
        if recording:
            frames.append(obs[record_env, -1].copy())
            actions.append(int(chosen[record_env]))
        obs, _, terminated, truncated, info = env.step(chosen)
        steps += int(n)
        if on_step is not None:
            on_step(int(n))
        open_steps += ~np.asarray(info.get("autoreset", np.zeros(n, dtype=bool)), dtype=bool)
        if "episode" in info:
            finished = np.flatnonzero(info["_episode"])
            recording = recording and record_env not in finished
            counted = tally.count(finished, info["episode"], cut)
            open_steps[finished] = 0
            flagged[finished] = False
            if counted and on_game is not None:
                on_game(len(tally.returns))
        cut = np.asarray(truncated, dtype=bool) & ~np.asarray(terminated, dtype=bool)
        if on_long_game is not None:
            limit = _long_game_limit(tally.lengths, long_game_steps)
            for i in np.flatnonzero((open_steps >= limit) & ~flagged & tally.wanted()):
                flagged[i] = True
                on_long_game(int(i), int(open_steps[i]))
    base_seed = getattr(env, "seed", None) if seed is None else int(seed)
    return EvalResult(
        game=env.game,
        episode_returns=tally.returns,
        episode_lengths=tally.lengths,
        agent_steps=steps,
        frames_per_step=env.spec_info.frameskip,
        observations=frames,
        interrupted=interrupted,
        episode_truncated=tally.truncated,
        frame_cap=_frame_cap(env),
        actions=actions,
        record_seed=None if record_env is None or base_seed is None else base_seed + record_env,
    )


def _long_game_limit(lengths: list[int], long_game_steps: int) -> int:
    """Agent steps after which a game in progress counts as unusually long."""
    if not lengths:
        return long_game_steps
    return min(long_game_steps, max(5 * int(np.median(lengths)), LONG_GAME_FLOOR))


def _frame_cap(env: Any) -> int | None:
    spec = getattr(env, "spec_info", None)
    cap = getattr(spec, "max_num_frames_per_episode", None)
    return None if cap is None else int(cap)


class _Tally:
    """Finished games counted per environment, each up to its even share of ``episodes``."""

    def __init__(self, episodes: int, num_envs: int) -> None:
        self.quota = np.full(num_envs, episodes // num_envs)
        self.quota[: episodes % num_envs] += 1
        self.done = np.zeros(num_envs, dtype=np.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.truncated: list[bool] = []

    def complete(self) -> bool:
        return bool((self.done >= self.quota).all())

    def wanted(self) -> np.ndarray:
        """Which environments' games in progress will be counted."""
        return self.done < self.quota

    def count(self, envs: np.ndarray, episode: dict[str, np.ndarray], cut: np.ndarray) -> int:
        """Record the games that just ended in ``envs`` (``episode``: the vector env's
        ``info["episode"]``, returns ``r`` and lengths ``l``; ``cut``: per env, whether the
        frame cap ended its game); returns how many were counted."""
        counted = 0
        for i in envs:
            if self.done[i] < self.quota[i]:
                self.returns.append(float(episode["r"][i]))
                self.lengths.append(int(episode["l"][i]))
                self.truncated.append(bool(cut[i]))
                self.done[i] += 1
                counted += 1
        return counted
