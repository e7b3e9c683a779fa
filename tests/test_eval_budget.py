"""Which games an evaluation scores: the first ``episodes`` games, in the order they start, whose
lengths fit the step budget, as one environment playing them back to back would score them."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from distrl_agents.evaluation import evaluate

Lengths = Callable[[int, int], int]  # (env, game index on that env) -> game length


def _game_id(env: int, game: int) -> float:
    return float(1000 * env + game)


class ScriptedGames:
    """A vector env with the ``AtariEnv`` conventions (next-step autoreset: the step after a
    game's last one starts the next game and reports the finished one in ``info["episode"]``)
    whose game ``j`` on env ``i`` lasts ``lengths(i, j)`` steps and scores ``_game_id(i, j)``.
    ``life_lost_at`` marks steps of a game that are terminal for learning but not the end."""

    def __init__(self, num_envs: int, lengths: Lengths, life_lost_at: tuple[int, ...] = ()):
        self.num_envs, self.lengths, self.life_lost_at = num_envs, lengths, life_lost_at
        self.game = "scripted"
        self.spec_info = SimpleNamespace(frameskip=4)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        n = self.num_envs
        self.index = np.zeros(n, dtype=np.int64)  # game index per env
        self.pos = np.zeros(n, dtype=np.int64)  # steps of the current game
        self.over = np.zeros(n, dtype=bool)
        return np.zeros((n, 4, 2, 2), dtype=np.uint8), {"autoreset": np.zeros(n, dtype=bool)}

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        n = self.num_envs
        autoreset, terminated = self.over.copy(), np.zeros(n, dtype=bool)
        info: dict[str, Any] = {"autoreset": autoreset}
        if autoreset.any():
            r, ln = np.zeros(n), np.zeros(n, dtype=np.int64)
            for i in np.flatnonzero(autoreset):
                r[i], ln[i] = _game_id(int(i), int(self.index[i])), self.pos[i]
                self.index[i] += 1
                self.pos[i] = 0
            info["episode"], info["_episode"] = {"r": r, "l": ln}, autoreset.copy()
        for i in np.flatnonzero(~autoreset):
            self.pos[i] += 1
            end = self.pos[i] == self.lengths(int(i), int(self.index[i]))
            terminated[i] = end or int(self.pos[i]) in self.life_lost_at
        self.over = (~autoreset) & np.array(
            [self.pos[i] == self.lengths(i, int(self.index[i])) for i in range(n)]
        )
        obs = np.zeros((n, 4, 2, 2), dtype=np.uint8)
        return obs, np.zeros(n, np.float32), terminated, np.zeros(n, dtype=bool), info


def _play(env: ScriptedGames, **kw: Any) -> list[float]:
    noop = lambda obs, eps: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    return evaluate(noop, env, **kw).episode_returns


def reference(
    n: int, lengths: Lengths, episodes: int, budget: int | None, last_game: str
) -> list[float]:
    """Naive: lay every env's games on its timeline (a game's first step comes one autoreset
    step after the previous game's last), sort all games by first step (then env), and score
    them in that order as a single environment would."""
    games = []
    for i in range(n):
        t = 1
        for j in range(200):
            games.append((t, i, j, lengths(i, j)))
            t += lengths(i, j) + 1
    scored: list[float] = []
    spent = 0
    for _, i, j, length in sorted(games):
        if episodes and len(scored) == episodes:
            break
        if budget is not None and last_game == "drop" and spent + length > budget:
            break  # the Lua code: it ends after the budget
        if budget is not None and last_game == "finish" and spent >= budget:
            break  # Dopamine: it would start after the budget
        scored.append(_game_id(i, j))
        spent += length
    return scored


def test_one_env_drop_scores_games_ending_within_the_budget_finish_those_starting() -> None:
    # Games of 3, 4, 5, 6 steps back to back end at steps 3, 7, 12, 18.
    env = ScriptedGames(1, lambda i, j: (3, 4, 5, 6, 100)[j])
    ids = [_game_id(0, j) for j in range(4)]
    assert _play(env, episodes=0, max_steps=12, last_game="drop") == ids[:3]  # ends at 12 <= 12
    assert _play(env, episodes=0, max_steps=11, last_game="drop") == ids[:2]  # the Lua code
    assert _play(env, episodes=0, max_steps=11, last_game="finish") == ids[:3]  # Dopamine
    assert _play(env, episodes=0, max_steps=12, last_game="finish") == ids[:3]  # starts at 12
    assert _play(env, episodes=2, max_steps=100, last_game="finish") == ids[:2]
    assert _play(env, episodes=4, max_steps=None) == ids


def test_a_game_ending_exactly_at_the_budget_is_scored_despite_life_losses() -> None:
    # A life lost on step 2 and the game over on step 5 both read as terminal; the game over
    # is known a step later (the autoreset step), which the evaluation waits for.
    env = ScriptedGames(1, lambda i, j: (5, 7)[j % 2], life_lost_at=(2,))
    assert _play(env, episodes=0, max_steps=5) == [_game_id(0, 0)]
    assert _play(env, episodes=0, max_steps=4) == []


def test_long_games_are_not_dropped_for_the_short_games_of_other_envs() -> None:
    # Env 0 plays 2-step games, env 1 10-step ones. By the time env 1's first game ends
    # (vector step 10), env 0 has played four games. Back to back in start order the games are
    # 2 (env 0), 10 (env 1), 2, 2, ...: the long game is second and fits a budget of 20.
    env = ScriptedGames(2, lambda i, j: 2 if i == 0 else 10)
    scored = _play(env, episodes=4, max_steps=20, last_game="drop")
    assert scored == [_game_id(0, 0), _game_id(1, 0), _game_id(0, 1), _game_id(0, 2)]


@pytest.mark.parametrize("last_game", ["drop", "finish"])
@pytest.mark.parametrize("num_envs", [1, 2, 3, 5])
def test_scored_games_match_a_naive_single_environment_reference(
    num_envs: int, last_game: str
) -> None:
    rng = np.random.default_rng(num_envs)
    for trial in range(6):
        table = rng.integers(1, 30, size=(num_envs, 200))

        def lengths(i: int, j: int, table: np.ndarray = table) -> int:
            return int(table[i, j])

        for episodes, budget in [(0, 1), (0, 17), (0, 60), (1, None), (4, 25), (9, None), (9, 90)]:
            env = ScriptedGames(num_envs, lengths)
            got = _play(env, episodes=episodes, max_steps=budget, last_game=last_game)
            want = reference(num_envs, lengths, episodes, budget, last_game)
            assert got == want, (trial, episodes, budget)


def test_an_evaluation_needs_a_game_cap_or_a_step_budget() -> None:
    env = ScriptedGames(1, lambda i, j: 3)
    with pytest.raises(ValueError, match="game cap"):
        _play(env, episodes=0, max_steps=None)
    with pytest.raises(ValueError, match="last_game"):
        _play(env, episodes=1, last_game="keep")


def test_only_games_that_may_still_be_scored_are_flagged_as_long() -> None:
    # One game is wanted: game 0 (env 0). Env 1's game, second in start order, never counts.
    env = ScriptedGames(2, lambda i, j: 60)
    flagged: list[tuple[int, int]] = []
    noop = lambda obs, eps: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    result = evaluate(
        noop, env, episodes=1, on_long_game=lambda i, n: flagged.append((i, n)), long_game_steps=40
    )
    assert flagged == [(0, 40)] and result.episode_returns == [_game_id(0, 0)]
    assert result.episode_truncated == [False]
