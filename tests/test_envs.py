from __future__ import annotations

import numpy as np
import pytest

from distrl_agents.envs import (
    ATARI57,
    ATARI100K,
    PROTOCOLS,
    UnknownGameError,
    make_atari_env,
    resolve_game,
)
from distrl_agents.evaluation import human_normalized_score


def _play(env, steps: int, seed: int = 0):
    """Random play; returns per-game (reported score, sum of raw rewards, reported length)."""
    rng = np.random.default_rng(seed)
    env.reset()
    raw_sum = np.zeros(env.num_envs)
    steps_in_game = np.zeros(env.num_envs, dtype=np.int64)
    games, life_terminals, terminals = [], 0, 0
    for _ in range(steps):
        _, reward, term, _, info = env.step(rng.integers(0, env.num_actions, env.num_envs))
        new = info["autoreset"]
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                games.append(
                    (info["episode"]["r"][i], raw_sum[i], info["episode"]["l"][i], steps_in_game[i])
                )
        raw_sum[new] = 0.0
        steps_in_game[new] = 0
        assert np.all(reward[new] == 0)
        raw_sum[~new] += reward[~new]
        steps_in_game[~new] += 1
        terminals += int(term.sum())
        life_terminals += int((term & (info["lives"] > 0)).sum())
    return games, terminals, life_terminals


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("game", ATARI57)
def test_every_atari57_game_constructs_and_steps(game: str, protocol: str) -> None:
    env = make_atari_env(game, protocol=protocol, num_envs=2, seed=1)
    obs, info = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert env.single_observation_space.shape == (4, 84, 84)
    for _ in range(5):
        obs, reward, term, trunc, info = env.step(np.zeros(2, dtype=np.int64))
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert reward.dtype == np.float32 and reward.shape == (2,)
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert np.all(np.abs(info["clipped_reward"]) <= 1.0)
    env.close()


def test_whole_game_score_is_sum_of_raw_rewards_across_lives() -> None:
    # Space Invaders pays 5-30 points per alien: clipping would show, and it has 3 lives.
    env = make_atari_env("space_invaders", protocol="nature", num_envs=2, seed=3)
    games, terminals, life_terminals = _play(env, 3000)
    assert len(games) >= 2
    for score, raw, length, steps in games:
        assert score == pytest.approx(raw)
        assert length == steps
    assert max(score for score, *_ in games) > 30  # raw, not clipped
    # Several learning terminals per game: the life losses.
    assert terminals > len(games) and life_terminals > 0


def test_life_loss_terminals_only_under_nature() -> None:
    results = {}
    for protocol in ("nature", "machado"):
        env = make_atari_env("breakout", protocol=protocol, num_envs=2, seed=0)
        games, terminals, life_terminals = _play(env, 1500)
        results[protocol] = (len(games), terminals, life_terminals)
    n_games, terminals, life_terminals = results["nature"]
    assert life_terminals >= 3 * n_games > 0  # Breakout: 5 lives, terminal at each loss
    n_games, terminals, life_terminals = results["machado"]
    # Every terminal is a game over: each is followed by a reported game (but the last, per env).
    assert life_terminals == 0 and n_games > 0
    assert 0 <= terminals - n_games <= 2


def test_truncation_at_frame_cap_starts_a_new_game() -> None:
    env = make_atari_env("pong", protocol="nature", num_envs=1, max_num_frames_per_episode=400)
    env.reset()
    truncated_at, autoreset_at = [], []
    for t in range(250):
        _, _, _, trunc, info = env.step(np.zeros(1, dtype=np.int64))
        if trunc[0]:
            truncated_at.append(t)
        if info["autoreset"][0]:
            autoreset_at.append(t)
            assert info["episode"]["f"][0] >= 400 - 4
    assert truncated_at and autoreset_at
    assert autoreset_at[0] == truncated_at[0] + 1


def _obs_trace(protocol: str, seed: int, steps: int = 150) -> np.ndarray:
    env = make_atari_env("pong", protocol=protocol, num_envs=1, seed=seed, noop_max=0)
    env.reset()
    actions = np.random.default_rng(0).integers(0, env.num_actions, steps)
    frames = [env.step(np.array([a]))[0][0, -1].copy() for a in actions]
    return np.stack(frames)


def test_sticky_actions_only_under_machado() -> None:
    # Same actions, no no-op starts: only sticky actions can make two seeds differ.
    assert np.array_equal(_obs_trace("nature", 0), _obs_trace("nature", 1))
    assert not np.array_equal(_obs_trace("machado", 0), _obs_trace("machado", 1))
    assert make_atari_env("pong", protocol="machado").spec_info.repeat_action_probability == 0.25
    assert make_atari_env("pong", protocol="nature").spec_info.repeat_action_probability == 0.0


def test_overrides_pass_through_and_invalid_ones_fail() -> None:
    env = make_atari_env("pong", full_action_space=True, repeat_action_probability=0.0, noop_max=5)
    assert env.num_actions == 18
    assert env.spec_info.noop_max == 5
    with pytest.raises(ValueError, match="Valid settings"):
        make_atari_env("pong", sticky=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_atari_env("pong", repeat_action_probability=1.5)
    with pytest.raises(ValueError, match="noop_max"):
        make_atari_env("pong", noop_max=-1)
    with pytest.raises(ValueError, match="Valid protocols"):
        make_atari_env("pong", protocol="dopamine")
    with pytest.raises(ValueError, match="shape"):
        env.reset()
        env.step(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    ("name", "rom"),
    [
        ("Breakout", "breakout"),
        ("breakout", "breakout"),
        ("BreakoutNoFrameskip-v4", "breakout"),
        ("ALE/Breakout-v5", "breakout"),
        ("MsPacman", "ms_pacman"),
        ("ms_pacman", "ms_pacman"),
        ("MsPacmanNoFrameskip-v4", "ms_pacman"),
        ("UpNDown", "up_n_down"),
        ("ALE/MontezumaRevenge-v5", "montezuma_revenge"),
        ("Pong-ramDeterministic-v4", "pong"),
    ],
)
def test_resolve_game(name: str, rom: str) -> None:
    assert resolve_game(name) == rom


def test_unknown_game_names_closest() -> None:
    with pytest.raises(UnknownGameError, match="breakout"):
        resolve_game("breakot")
    with pytest.raises(UnknownGameError):
        make_atari_env("not_a_game")


def test_any_shipped_rom_plays_beyond_atari57() -> None:
    env = make_atari_env("adventure", num_envs=1)
    env.reset()
    env.step(np.zeros(1, dtype=np.int64))
    assert "adventure" not in ATARI57


def test_game_tables() -> None:
    assert len(ATARI57) == 57 and len(ATARI100K) == 26
    assert set(ATARI100K) <= set(ATARI57)


def test_human_normalized_score_hand_checked() -> None:
    # breakout: random 1.7, human 30.5
    assert human_normalized_score("breakout", 1.7) == pytest.approx(0.0)
    assert human_normalized_score("breakout", 30.5) == pytest.approx(1.0)
    assert human_normalized_score("Breakout", 59.3) == pytest.approx(2.0)
    # pong: random -20.7, human 14.6 -> score 0 is 20.7 / 35.3
    assert human_normalized_score("pong", 0.0) == pytest.approx(20.7 / 35.3)
    np.testing.assert_allclose(human_normalized_score("pong", np.array([-20.7, 14.6])), [0, 1])
    with pytest.raises(ValueError, match="Atari-57"):
        human_normalized_score("adventure", 10.0)


def test_send_recv_equals_step() -> None:
    a = make_atari_env("breakout", protocol="nature", num_envs=2, seed=4)
    b = make_atari_env("breakout", protocol="nature", num_envs=2, seed=4)
    a.reset()
    b.reset()
    actions = np.random.default_rng(0).integers(0, a.num_actions, (300, 2))
    for act in actions:
        out_a = a.step(act)
        b.send(act)
        out_b = b.recv()
        for x, y in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(out_a[4]["autoreset"], out_b[4]["autoreset"])
    with pytest.raises(RuntimeError, match="without send"):
        b.recv()


@pytest.mark.parametrize("fire", [False, True])
def test_nature_protocol_presses_no_fire_on_reset(fire: bool) -> None:
    # Breakout's ball is served only by FIRE. Under the nature protocol (DeepMind's alewrap,
    # Dopamine, Kaixhin's DER: no FIRE on reset), standing still never serves it, so no life is
    # lost; with Baselines' FireResetEnv (the override) the served ball is missed within ~200 steps.
    overrides = {"use_fire_reset": True} if fire else {}
    env = make_atari_env("breakout", protocol="nature", num_envs=1, seed=0, **overrides)
    env.reset()
    noop = np.zeros(1, dtype=np.int64)
    lost = False
    for _ in range(400):
        _, _, term, _, _ = env.step(noop)
        lost |= bool(term[0])
    env.close()
    assert lost == fire
