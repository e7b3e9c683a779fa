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


#: What becomes of the game in progress when the step budget runs out: ``drop`` (not scored: the
#: DQN paper's Lua code, whose evaluation is a fixed number of steps) or ``finish`` (played to its
#: end and scored: Dopamine's ``Runner._run_one_phase``, whose budget is a minimum).
LAST_GAME_RULES = ("drop", "finish")


def evaluate(
    act: Callable[[np.ndarray, float], np.ndarray],
    env,
    *,
    episodes: int,
    max_steps: int | None = None,
    last_game: str = "drop",
    epsilon: float = 0.001,
    record_env: int | None = None,
    on_step: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int | None = None,
    on_game: Callable[[int], None] | None = None,
    on_long_game: Callable[[int, int], None] | None = None,
    long_game_steps: int = LONG_GAME_STEPS,
) -> EvalResult:
    """Score the games one environment would play back to back, on the vector ``env``.

    The games are put in the order they start (games that start on the same vector step in env
    order), and scored as if one environment had played them in that order: the first
    ``episodes`` games (``0``: no cap) whose lengths fit the ``max_steps`` budget (agent steps,
    ``None``: no budget). With ``last_game="drop"`` a game counts if it *ends* within the budget
    (the DQN paper's Lua code); with ``"finish"`` if it *starts* within it, the game that
    crosses the budget being played to its end (Dopamine). Which env plays a game, and how long
    the games on other envs last, does not decide whether it is scored, so long games are not
    dropped more often than short ones (their lengths are independent draws whatever the order
    in which they start). Play stops as soon as the scored set is known; envs whose games can
    no longer count keep stepping until then, unscored. The result lists the scored games in
    start order; ``agent_steps`` is every step played.

    Args:
        act: ``act(obs [N, 4, 84, 84], epsilon) -> actions [N]``, e.g. ``agent.act``.
        episodes: the most games to score (``0``: as many as the budget holds).
        max_steps: the step budget (``None``: no budget; then ``episodes`` must be >= 1).
        last_game: ``drop`` or ``finish`` (:data:`LAST_GAME_RULES`).
        record_env: when set, the observations seen by that env during its first game are kept
            in ``EvalResult.observations`` (for videos and distribution pictures).
        on_step: called with the number of agent steps after each vector step (progress bars).
        should_stop: polled every step; when it returns True play stops at once (the result then
            holds the games scored so far and ``interrupted`` is set).
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
    tally = _Tally(n, episodes=episodes, max_steps=max_steps, last_game=last_game)
    frames: list[np.ndarray] = []
    actions: list[int] = []
    recording = record_env is not None
    obs, _ = env.reset(seed=seed)
    steps = 0
    interrupted = False
    cut = np.zeros(n, dtype=bool)  # the game that ended on the last step was cut by the cap
    open_steps = np.zeros(n, dtype=np.int64)  # agent steps of each env's game in progress
    flagged = np.zeros(n, dtype=bool)  # on_long_game was called for this env's game
    while not tally.complete():
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
            open_steps[finished] = 0
            flagged[finished] = False
        before = len(tally.returns)
        tally.step(info["autoreset"], terminated | truncated, info.get("episode"), cut)
        if len(tally.returns) > before and on_game is not None:
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
    """Games in the order they start, scored as one environment playing them back to back.

    ``length[k]`` is game ``k``'s length once it ended (``-1`` while it is played, on env
    ``env[k]``). The games before ``self.next`` are decided: ``returns`` / ``lengths`` /
    ``truncated`` hold those scored, ``spent`` their summed length (the budget a single
    environment would have used on them).
    """

    def __init__(
        self, num_envs: int, *, episodes: int, max_steps: int | None, last_game: str
    ) -> None:
        if last_game not in LAST_GAME_RULES:
            raise ValueError(f"last_game must be one of {list(LAST_GAME_RULES)}, got {last_game!r}")
        if episodes < 0 or (max_steps is not None and max_steps < 1):
            raise ValueError(
                f"episodes must be >= 0 and max_steps >= 1 or None; got {episodes}, {max_steps}"
            )
        if episodes == 0 and max_steps is None:
            raise ValueError("an evaluation needs a game cap (episodes >= 1) or a step budget")
        self.episodes, self.max_steps, self.finish = episodes, max_steps, last_game == "finish"
        self.env: list[int] = list(range(num_envs))  # every env starts a game at reset
        self.length: list[int] = [-1] * num_envs
        self.score: list[float] = [0.0] * num_envs
        self.cut: list[bool] = [False] * num_envs  # the frame cap ended it
        self.current = np.arange(num_envs)  # env -> index of the game it is playing
        self.elapsed = np.zeros(num_envs, dtype=np.int64)  # steps of that game so far
        self.ended = np.zeros(num_envs, dtype=bool)  # its last step was terminal / truncated
        self.next = 0
        self.spent = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.truncated: list[bool] = []
        self.done = False

    def complete(self) -> bool:
        return self.done

    def wanted(self) -> np.ndarray:
        """Which environments' games in progress may still be scored."""
        wanted = np.zeros(len(self.current), dtype=bool)
        if self.done:
            return wanted
        budget, before = self.max_steps, self.spent  # steps of the games before game k, at least
        for k in range(self.next, len(self.env)):
            if self.episodes and k >= self.episodes:
                break
            if budget is not None and self.finish and before >= budget:
                break
            i = self.env[k]
            at_least = self.length[k] if self.length[k] >= 0 else int(self.elapsed[i])
            if budget is not None and not self.finish and before + at_least > budget:
                break
            wanted[i] |= self.length[k] < 0
            before += at_least
        return wanted

    def step(
        self,
        autoreset: np.ndarray,
        ended: np.ndarray,
        episode: dict[str, np.ndarray] | None,
        cut: np.ndarray,
    ) -> None:
        """Account for one vector step: ``autoreset`` marks the envs that started a new game
        (``episode``, the vector env's ``info["episode"]``, then holds the finished game's
        return ``r`` and length ``l``, and ``cut`` whether the frame cap ended it), ``ended``
        those whose step was terminal or truncated."""
        for i in np.flatnonzero(autoreset):
            k = int(self.current[i])
            assert episode is not None, "an autoreset step carries the finished game's statistics"
            self.length[k] = int(episode["l"][i])
            self.score[k] = float(episode["r"][i])
            self.cut[k] = bool(cut[i])
            self.current[i] = len(self.env)
            self.env.append(int(i))
            self.length.append(-1)
            self.score.append(0.0)
            self.cut.append(False)
            self.elapsed[i] = 0
        played = ~np.asarray(autoreset, dtype=bool)
        self.elapsed[played] += 1
        self.ended = np.asarray(ended, dtype=bool) & played
        self._decide()

    def _decide(self) -> None:
        budget = self.max_steps
        while not self.done and self.next < len(self.env):
            k = self.next
            if self.episodes and len(self.returns) >= self.episodes:
                self.done = True
            elif budget is not None and self.finish and self.spent >= budget:
                self.done = True  # game k would start after the budget
            elif self.length[k] < 0:  # still playing: it may yet decide the rest
                i = self.env[k]
                at_least = int(self.elapsed[i]) + (0 if self.ended[i] else 1)
                if budget is not None and not self.finish and self.spent + at_least > budget:
                    self.done = True  # it cannot end within the budget
                return
            elif budget is not None and not self.finish and self.spent + self.length[k] > budget:
                self.done = True  # it ended after the budget
            else:
                self.returns.append(self.score[k])
                self.lengths.append(self.length[k])
                self.truncated.append(self.cut[k])
                self.spent += self.length[k]
                self.next += 1
