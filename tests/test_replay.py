"""Tests for distrl_agents.replay: stacks and episode boundaries, n-step targets against a naive
reference, several environments, ring wrap-around, samplers, importance weights, save/load and
error messages."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from distrl_agents.replay import ReplayBuffer, ReplayLoadError, SumTree

GAMMA = 0.9


# --------------------------------------------------------------------------- helpers
def atari_frame(value: int) -> np.ndarray:
    return np.full((84, 84), value, dtype=np.uint8)


def stack_values(x: torch.Tensor) -> list[list[int]]:
    """``[B, S, 84, 84]`` constant frames -> their values ``[B][S]``."""
    return x[:, :, 0, 0].tolist()


class AtariFeeder:
    """Drives a 1-env Atari-shaped buffer the way the training loop does, keeping the env-side
    stack (zero-padded at reset like ale-py's AtariVectorEnv) to pass as ``obs``."""

    def __init__(self, buf: ReplayBuffer) -> None:
        self.buf = buf
        self.stack: deque[np.ndarray] = deque(
            [atari_frame(0)] * buf.stack_size, maxlen=buf.stack_size
        )
        self.new_episode = True

    def add(
        self,
        value: int,
        reward: float = 0.0,
        term: bool = False,
        trunc: bool = False,
        valid: bool = True,
        action: int = 0,
    ) -> None:
        if self.new_episode:
            self.stack.extend([atari_frame(0)] * self.buf.stack_size)
        self.stack.append(atari_frame(value))
        obs = np.stack(self.stack)[None]  # [1, S, 84, 84]
        self.buf.add(obs, [action], [reward], [term], [trunc], valid=[valid])
        self.new_episode = not valid


def find_index(buf: ReplayBuffer, value: int) -> int:
    """Buffer index of the sampleable entry whose newest frame has ``value``."""
    idx = buf.sampleable_indices()
    newest = buf.batch_at(idx).obs[:, -1, 0, 0].numpy()
    hits = idx[newest == value]
    assert hits.size == 1, f"frame {value}: {hits.size} sampleable entries"
    return int(hits[0])


# --------------------------------------------------------------------------- stacks
def test_stacks_zero_padded_at_episode_start_and_after_game_over() -> None:
    buf = ReplayBuffer(64, stack_size=4, n_step=1, gamma=GAMMA)
    feed = AtariFeeder(buf)
    for v in range(1, 6):  # episode A: frames 1..5, game over after frame 5
        feed.add(v, reward=float(v), term=(v == 5))
    feed.add(6, valid=False)  # final observation of episode A (autoreset step)
    for v in range(7, 12):  # episode B
        feed.add(v, reward=1.0)

    def at(v: int):
        return buf.batch_at([find_index(buf, v)])

    assert stack_values(at(1).obs) == [[0, 0, 0, 1]]
    assert stack_values(at(2).obs) == [[0, 0, 1, 2]]
    assert stack_values(at(4).obs) == [[1, 2, 3, 4]]
    b5 = at(5)  # terminal: next obs is the stored final observation, discount 0
    assert stack_values(b5.next_obs) == [[3, 4, 5, 6]]
    assert b5.discount.item() == 0.0 and b5.reward.item() == 5.0
    assert stack_values(at(7).obs) == [[0, 0, 0, 7]]  # new episode: never reaches into episode A
    assert stack_values(at(8).obs) == [[0, 0, 7, 8]]
    assert stack_values(at(10).obs) == [[7, 8, 9, 10]]
    assert stack_values(at(7).next_obs) == [[0, 0, 7, 8]]
    # The final observation (6) is no transition; 11 waits for its next observation.
    newest = set(buf.batch_at(buf.sampleable_indices()).obs[:, -1, 0, 0].tolist())
    assert newest == {1, 2, 3, 4, 5, 7, 8, 9, 10}
    assert len(buf) == 9 and buf.num_added == 11


def test_life_loss_terminal_cuts_return_but_not_stack() -> None:
    buf = ReplayBuffer(64, stack_size=4, n_step=3, gamma=GAMMA)
    feed = AtariFeeder(buf)
    rewards = {1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0, 5: 16.0, 6: 32.0, 7: 64.0}
    for v in range(1, 8):
        feed.add(v, reward=rewards[v], term=(v == 3))  # life lost at 3, game continues
    b4 = buf.batch_at([find_index(buf, 4)])
    assert stack_values(b4.obs) == [[1, 2, 3, 4]]  # stack continues across the life loss
    b2 = buf.batch_at([find_index(buf, 2)])
    assert b2.reward.item() == pytest.approx(2.0 + GAMMA * 4.0)  # cut at the terminal
    assert b2.discount.item() == 0.0
    assert stack_values(b2.next_obs) == [[1, 2, 3, 4]]
    b1 = buf.batch_at([find_index(buf, 1)])
    assert b1.reward.item() == pytest.approx(1.0 + GAMMA * 2.0 + GAMMA**2 * 4.0)
    assert b1.discount.item() == 0.0
    b3 = buf.batch_at([find_index(buf, 3)])
    assert b3.reward.item() == 4.0 and b3.discount.item() == 0.0
    b4_ret = 8.0 + GAMMA * 16.0 + GAMMA**2 * 32.0  # full window after the life loss
    assert b4.reward.item() == pytest.approx(b4_ret)
    assert b4.discount.item() == pytest.approx(GAMMA**3)
    assert stack_values(b4.next_obs) == [[4, 5, 6, 7]]


def test_truncation_bootstraps_from_final_observation() -> None:
    buf = ReplayBuffer(64, stack_size=4, n_step=3, gamma=GAMMA)
    feed = AtariFeeder(buf)
    for v in range(1, 6):
        feed.add(v, reward=1.0, trunc=(v == 5), action=v)
    feed.add(6, valid=False, action=99)  # final observation after the time limit
    feed.add(7, reward=1.0)
    b5 = buf.batch_at([find_index(buf, 5)])
    assert b5.reward.item() == pytest.approx(1.0)
    assert b5.discount.item() == pytest.approx(GAMMA)  # not terminal: bootstraps
    assert stack_values(b5.next_obs) == [[3, 4, 5, 6]]
    assert b5.action.item() == 5 and b5.action.dtype == torch.int64
    b4 = buf.batch_at([find_index(buf, 4)])
    assert b4.reward.item() == pytest.approx(1.0 + GAMMA)
    assert b4.discount.item() == pytest.approx(GAMMA**2)
    assert stack_values(b4.next_obs) == [[3, 4, 5, 6]]
    b3 = buf.batch_at([find_index(buf, 3)])
    assert b3.discount.item() == pytest.approx(GAMMA**3)
    assert stack_values(b3.next_obs) == [[3, 4, 5, 6]]
    assert len(buf) == 5  # 1..5; 7 is still waiting for its window


# --------------------------------------------------------------------------- random reference
@dataclass
class EnvLog:
    """One environment's stream as the loop passes it to add()."""

    frames: list[np.ndarray] = field(default_factory=list)  # newest frame per entry
    stacks: list[np.ndarray] = field(default_factory=list)  # env-side stack per entry
    action: list[int] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    term: list[bool] = field(default_factory=list)
    trunc: list[bool] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    stack_pos: list[int] = field(default_factory=list)


def run_random_episodes(
    buf: ReplayBuffer, steps: int, rng: np.random.Generator, p_end: float = 0.06
) -> list[EnvLog]:
    """Random episodes with life-loss terminals, game overs and truncations; vector frames
    ``[env + 1, t + 1]`` identify every entry."""
    envs, stack = buf.num_envs, buf.stack_size
    logs = [EnvLog() for _ in range(envs)]
    env_stacks = [np.zeros((stack, 2), np.float32) for _ in range(envs)]
    ended = [True] * envs  # the next entry starts an episode
    since_start = [0] * envs
    game_over_prev = np.zeros(envs, bool)
    for t in range(steps):
        obs = np.zeros((envs, stack, 2), np.float32)
        act = rng.integers(0, 6, size=envs)
        rew = rng.normal(size=envs).round(2)
        term = np.zeros(envs, bool)
        trunc = np.zeros(envs, bool)
        valid = np.ones(envs, bool)
        game_over = np.zeros(envs, bool)
        for e in range(envs):
            log = logs[e]
            if ended[e]:
                env_stacks[e][:] = 0.0
                since_start[e] = 0
            else:
                since_start[e] += 1
            frame = np.array([e + 1, t + 1], np.float32)
            env_stacks[e] = np.concatenate([env_stacks[e][1:], frame[None]])
            obs[e] = env_stacks[e]
            # previous entry ended the game or hit the time limit -> this is the final observation
            valid[e] = (
                not (log.valid and log.valid[-1] and (game_over_prev[e] or log.trunc[-1]))
                if t
                else True
            )
            if valid[e]:
                u = rng.random()
                term[e] = u < p_end  # life loss or game over
                game_over[e] = term[e] and rng.random() < 0.5
                trunc[e] = (not term[e]) and p_end <= u < 1.6 * p_end
                if rng.random() < 0.1 * p_end:  # game over exactly at the time limit
                    term[e] = trunc[e] = game_over[e] = True
            log.frames.append(frame)
            log.stacks.append(env_stacks[e].copy())
            log.action.append(int(act[e]))
            log.reward.append(float(rew[e]))
            log.term.append(bool(term[e]))
            log.trunc.append(bool(trunc[e]))
            log.valid.append(bool(valid[e]))
            log.stack_pos.append(min(since_start[e], stack - 1))
            ended[e] = not valid[e]
        game_over_prev = game_over
        buf.add(obs, act, rew, term, trunc, valid=valid)
    return logs


def reference(log: EnvLog, t: int, n: int, gamma: float) -> tuple[float, float, int] | None:
    """Naive n-step target of entry t: (return, discount, m), or None if not complete yet."""
    g = 0.0
    for k in range(n):
        j = t + k
        if j >= len(log.reward):  # window still open
            return None
        g += gamma**k * log.reward[j]
        if log.term[j]:
            m, disc = k + 1, 0.0
            break
        if log.trunc[j] or (j + 1 < len(log.valid) and not log.valid[j + 1]):
            m, disc = k + 1, gamma ** (k + 1)
            break
    else:
        m, disc = n, gamma**n
    if t + m >= len(log.valid):  # bootstrap entry not stored yet
        return None
    return g, disc, m


def check_against_reference(buf: ReplayBuffer, logs: list[EnvLog]) -> None:
    seg, n = buf.segment, buf.n_step
    total_t = len(logs[0].valid)
    expected: dict[tuple[int, int], tuple[float, float, int]] = {}
    for e, log in enumerate(logs):
        for t in range(total_t):
            if not log.valid[t] or t - log.stack_pos[t] < total_t - seg:  # frames overwritten
                continue
            ref = reference(log, t, n, buf.gamma)
            if ref is not None:
                expected[(e, t)] = ref
    idx = buf.sampleable_indices()
    pos = idx % seg
    got_keys = [
        (int(i // seg), int(total_t - 1 - ((total_t - 1 - p) % seg))) for i, p in zip(idx, pos)
    ]
    assert sorted(got_keys) == sorted(expected), "sampleable set differs from the reference"
    assert len(buf) == len(expected)
    batch = buf.batch_at(idx)
    for row, (e, t) in enumerate(got_keys):
        log = logs[e]
        g, disc, m = expected[(e, t)]
        assert batch.reward[row].item() == pytest.approx(g, abs=1e-5)
        assert batch.discount[row].item() == pytest.approx(disc, abs=1e-6)
        assert batch.action[row].item() == log.action[t]
        np.testing.assert_array_equal(batch.obs[row].numpy(), log.stacks[t])
        np.testing.assert_array_equal(batch.next_obs[row].numpy(), log.stacks[t + m])


@pytest.mark.parametrize(
    ("num_envs", "n_step", "stack_size", "capacity", "steps"),
    [
        (1, 1, 4, 400, 300),  # no wrap
        (1, 3, 4, 60, 300),  # wraps several times
        (3, 5, 4, 150, 260),  # interleaved envs + wrap
        (4, 3, 1, 80, 120),  # vector observations, no stacking
        (2, 10, 2, 50, 200),
    ],
)
def test_nstep_targets_and_stacks_match_naive_reference(
    num_envs: int, n_step: int, stack_size: int, capacity: int, steps: int
) -> None:
    buf = ReplayBuffer(
        capacity,
        num_envs=num_envs,
        frame_shape=(2,),
        frame_dtype=np.float32,
        stack_size=stack_size,
        n_step=n_step,
        gamma=GAMMA,
    )
    rng = np.random.default_rng(n_step * 100 + num_envs)
    logs = run_random_episodes(buf, steps, rng)
    assert buf.num_added == steps * num_envs
    check_against_reference(buf, logs)
    # Episodes of every kind actually occurred.
    assert any(any(lg.trunc) for lg in logs) and any(not all(lg.valid) for lg in logs)


def test_reference_holds_at_every_step_during_wraparound() -> None:
    # re-run prefixes of one seeded stream and check each prefix (cheap at this size)
    for steps in (5, 14, 15, 16, 17, 29, 40, 61):
        buf = ReplayBuffer(
            30, num_envs=2, frame_shape=(2,), frame_dtype=np.float32, n_step=3, gamma=GAMMA
        )
        rng = np.random.default_rng(7)
        logs = run_random_episodes(buf, steps, rng, p_end=0.15)
        check_against_reference(buf, logs)


def test_envs_do_not_mix_frame_streams() -> None:
    buf = ReplayBuffer(200, num_envs=3, frame_shape=(2,), frame_dtype=np.float32, n_step=2)
    logs = run_random_episodes(buf, 100, np.random.default_rng(3))
    assert len(logs) == 3
    batch = buf.sample(128)
    for x in (batch.obs, batch.next_obs):
        envs = x[..., 0]  # [B, S] env id of each frame, 0 for padding
        assert torch.all((envs == 0) | (envs == envs[:, -1:])), "a stack mixes environments"
    assert torch.equal(batch.obs[:, -1, 0], batch.next_obs[:, -1, 0])  # same env for s and s'


# --------------------------------------------------------------------------- samplers
def fill_identity(buf: ReplayBuffer, steps: int) -> None:
    """A single never-ending episode per env with frame value [env+1, t+1]."""
    for t in range(steps):
        obs = np.zeros((buf.num_envs, buf.stack_size, 2), np.float32)
        obs[:, -1, 0] = np.arange(buf.num_envs) + 1
        obs[:, -1, 1] = t + 1
        zeros = np.zeros(buf.num_envs)
        buf.add(obs, zeros, np.full(buf.num_envs, float(t)), zeros > 0, zeros > 0)


def test_uniform_sampling_is_uniform_over_sampleable() -> None:
    buf = ReplayBuffer(
        40, num_envs=2, frame_shape=(2,), frame_dtype=np.float32, stack_size=2, n_step=3
    )
    fill_identity(buf, 57)  # wrapped: some slots not sampleable
    valid = buf.sampleable_indices()
    counts = np.zeros(buf.capacity)
    for _ in range(400):
        idx = buf.sample(32).indices.numpy()
        np.add.at(counts, idx, 1)
    assert counts[np.setdiff1d(np.arange(buf.capacity), valid)].sum() == 0
    assert stats.chisquare(counts[valid]).pvalue > 1e-3
    batch = buf.sample(16)
    assert torch.equal(batch.weights, torch.ones(16))
    assert batch.indices.dtype == torch.int64 and batch.weights.dtype == torch.float32
    buf.update_priorities(batch.indices, torch.rand(16))  # no-op for uniform


def test_sum_tree_sampling_frequencies_match_priorities() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(37)  # not a power of two: padding leaves must never be drawn
    prios = rng.random(37) * (rng.random(37) < 0.8)  # some zeros
    tree.set(np.arange(37), prios)
    assert tree.total == pytest.approx(prios.sum())
    draws = tree.find(rng.random(200_000) * tree.total)
    assert draws.max() < 37 and np.all(prios[draws] > 0)
    counts = np.bincount(draws, minlength=37)
    nz = prios > 0
    expected = prios[nz] / prios.sum() * draws.size
    assert stats.chisquare(counts[nz], expected).pvalue > 1e-3
    # duplicate indices in one update; parents recomputed exactly
    tree.set(np.array([3, 3, 5]), np.array([2.0, 2.0, 0.5]))
    prios[3], prios[5] = 2.0, 0.5
    assert tree.total == pytest.approx(prios.sum())
    # the small-update (Python int) path and the vectorised path build identical trees
    a, b = SumTree(100), SumTree(100)
    for _ in range(20):
        leaves, vals = rng.integers(0, 100, 12), rng.random(12)
        a.set(leaves, vals)
        for i in range(0, 12, 3):
            b.set(leaves[i : i + 3], vals[i : i + 3])
    np.testing.assert_array_equal(a.tree, b.tree)
    # a target at (or past) the total still lands on a positive leaf
    assert prios[tree.find(np.array([tree.total, tree.total * (1 + 1e-12)]))].min() > 0


def test_prioritized_buffer_frequencies_follow_priorities() -> None:
    alpha = 0.7
    buf = ReplayBuffer(
        64,
        frame_shape=(2,),
        frame_dtype=np.float32,
        stack_size=1,
        prioritized=True,
        alpha=alpha,
        priority_eps=1e-6,
    )
    fill_identity(buf, 21)
    idx = buf.sampleable_indices()
    loss = np.random.default_rng(1).random(idx.size) * 3
    buf.update_priorities(idx, loss)
    np.testing.assert_allclose(buf.priorities(idx), (loss + 1e-6) ** alpha)
    counts = np.zeros(buf.capacity)
    for _ in range(600):
        np.add.at(counts, buf.sample(16).indices.numpy(), 1)
    expected = (loss + 1e-6) ** alpha
    expected = expected / expected.sum() * counts.sum()
    assert stats.chisquare(counts[idx], expected).pvalue > 1e-3


def test_importance_weights_hand_checked_and_beta_anneals() -> None:
    buf = ReplayBuffer(
        32,
        frame_shape=(2,),
        frame_dtype=np.float32,
        stack_size=1,
        prioritized=True,
        alpha=1.0,
        beta=0.5,
        beta_steps=10,
        priority_eps=1e-9,
    )
    fill_identity(buf, 5)  # entries 0..3 sampleable
    assert len(buf) == 4 and buf.num_added == 5
    assert buf.beta == pytest.approx(0.5 + 0.5 * 5 / 10)
    # New transitions enter at the max priority (1.0 initially): all equal.
    batch = buf.sample(4)
    assert torch.allclose(batch.weights, torch.ones(4))
    buf.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    for _ in range(5):
        batch = buf.sample(4)
        idx = batch.indices.numpy()
        p = idx + 1.0  # p_i = priority_i (eps negligible), alpha = 1; total = 10
        w = (4 * p / 10.0) ** (-0.75)  # (N * P(i))^-beta, beta = 0.75 at 5 of 10 steps
        np.testing.assert_allclose(batch.weights.numpy(), w / w.max(), rtol=1e-5)
        # Stratified: the last of 4 equal strata of the mass, [7.5, 10), lies in leaf 3's [6, 10).
        assert idx[-1] == 3
    # the newest entry enters at the running max priority (4)
    fill_identity_more(buf, 1)
    assert buf.priorities([4])[0] == pytest.approx(4.0)
    fill_identity_more(buf, 10)
    assert buf.beta == 1.0
    # beta's clock counts agent steps: autoreset rows (valid=False) do not advance it
    more = ReplayBuffer(32, frame_shape=(2,), frame_dtype=np.float32, stack_size=1, prioritized=True,
                        beta=0.5, beta_steps=10)  # fmt: skip
    obs, z = np.zeros((1, 1, 2), np.float32), np.zeros(1)
    for valid in (True, True, False, True):
        more.add(obs, z, z, z > 0, z > 0, valid=[valid])
    assert more.num_added == 4 and more.num_valid == 3
    assert more.beta == pytest.approx(0.5 + 0.5 * 3 / 10)


def fill_identity_more(buf: ReplayBuffer, steps: int) -> None:
    obs = np.zeros((buf.num_envs, buf.stack_size, 2), np.float32)
    for _ in range(steps):
        z = np.zeros(buf.num_envs)
        buf.add(obs, z, z, z > 0, z > 0)


def test_evicted_indices_are_ignored_by_update_priorities() -> None:
    buf = ReplayBuffer(10, frame_shape=(2,), frame_dtype=np.float32, stack_size=2, prioritized=True)
    fill_identity(buf, 14)  # wrapped: the next add overwrites time 4 in slot 4
    victim = 5  # time 5: its stack [4, 5] needs the frame about to be overwritten
    assert victim in buf.sampleable_indices()
    fill_identity_more(buf, 1)
    assert victim not in buf.sampleable_indices()
    buf.update_priorities(np.array([victim]), np.array([100.0]))  # stale index from an old batch
    assert buf.priorities([victim])[0] == 0.0
    fill_identity_more(buf, 2)  # slot 5 is rewritten, its window completes: enters at max priority
    assert victim in buf.sampleable_indices()
    assert buf.priorities([victim])[0] == pytest.approx(1.0)  # 1^alpha, not 100^alpha


# --------------------------------------------------------------------------- backends
def test_torch_storage_backend_matches_numpy_backend() -> None:
    kw: dict[str, Any] = dict(
        num_envs=2, frame_shape=(84, 84), stack_size=4, n_step=3, prioritized=True, seed=5
    )
    a = ReplayBuffer(120, storage_backend="numpy", **kw)
    b = ReplayBuffer(120, storage_device="cpu", storage_backend="torch", **kw)
    assert a.storage_backend == "numpy" and b.storage_backend == "torch"
    rng = np.random.default_rng(0)
    for t in range(90):
        obs = rng.integers(0, 255, size=(2, 4, 84, 84), dtype=np.uint8)
        args = (rng.integers(0, 4, 2), rng.normal(size=2), rng.random(2) < 0.05, np.zeros(2, bool))
        valid = np.array([t % 30 != 29, True])
        a.add(obs, *args, valid=valid)
        b.add(torch.from_numpy(obs), *args, valid=valid)
    for _ in range(3):
        ba, bb = a.sample(32), b.sample(32)
        for name in ("obs", "next_obs", "action", "reward", "discount", "weights", "indices"):
            assert torch.equal(getattr(ba, name), getattr(bb, name)), name
        a.update_priorities(ba.indices, ba.reward.abs())
        b.update_priorities(bb.indices, bb.reward.abs())
    assert a.nbytes == b.nbytes


def test_memory_per_transition_at_atari_shape() -> None:
    buf = ReplayBuffer(10_000, prioritized=True)
    assert buf.nbytes / buf.capacity <= 7_200
    buf = ReplayBuffer(10_000)
    assert buf.nbytes / buf.capacity <= 7_100


# --------------------------------------------------------------------------- save / load
def make_filled(prioritized: bool, **kw) -> ReplayBuffer:
    buf = ReplayBuffer(
        90,
        num_envs=3,
        frame_shape=(84, 84),
        stack_size=4,
        n_step=3,
        prioritized=prioritized,
        seed=11,
        **kw,
    )
    rng = np.random.default_rng(2)
    for t in range(70):  # wraps (segment 30)
        obs = rng.integers(0, 255, size=(3, 4, 84, 84), dtype=np.uint8)
        buf.add(
            obs, rng.integers(0, 4, 3), rng.normal(size=3), rng.random(3) < 0.1, np.zeros(3, bool)
        )
        if prioritized and t > 20:
            batch = buf.sample(8)
            buf.update_priorities(batch.indices, rng.random(8))
    return buf


def continue_and_sample(buf: ReplayBuffer, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        obs = rng.integers(0, 255, size=(3, 4, 84, 84), dtype=np.uint8)
        buf.add(
            obs, rng.integers(0, 4, 3), rng.normal(size=3), rng.random(3) < 0.1, rng.random(3) < 0.1
        )
        batch = buf.sample(16)
        buf.update_priorities(batch.indices, batch.reward.abs())
        out.append(batch)
    return out


@pytest.mark.parametrize("prioritized", [False, True])
def test_save_load_round_trip_gives_identical_samples(tmp_path, prioritized: bool) -> None:
    buf = make_filled(prioritized)
    path = tmp_path / "replay.bin"
    buf.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.bin"]  # no temp file left
    loaded = ReplayBuffer.load(path, device="cpu")
    assert len(loaded) == len(buf) and loaded.num_added == buf.num_added
    assert loaded.beta == buf.beta and loaded.num_valid == buf.num_valid
    into = ReplayBuffer(90, num_envs=3, stack_size=4, n_step=3, prioritized=prioritized, seed=999)
    assert into.load(path) is into
    torch_backend = ReplayBuffer.load(path, storage_backend="torch")
    ref = continue_and_sample(buf, 5)
    for other in (loaded, into, torch_backend):
        got = continue_and_sample(other, 5)
        for a, b in zip(ref, got):
            for name in ("obs", "next_obs", "action", "reward", "discount", "weights", "indices"):
                assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_save_overwrites_atomically(tmp_path, monkeypatch) -> None:
    buf = make_filled(True)
    path = tmp_path / "replay.bin"
    buf.save(path)
    good = path.read_bytes()
    buf.add(np.zeros((3, 4, 84, 84), np.uint8), [0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0])

    def boom():
        yield memoryview(b"partial")
        raise OSError("disk full")

    from distrl_agents.replay import storage

    monkeypatch.setattr(storage.NumpyFrameStore, "iter_chunks", lambda self, ranges: boom())
    with pytest.raises(OSError, match="disk full"):
        buf.save(path)
    assert path.read_bytes() == good  # the old file survives an interrupted save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.bin"]


def test_corrupt_truncated_and_missing_files_raise_replay_load_error(tmp_path) -> None:
    buf = make_filled(True)
    path = tmp_path / "replay.bin"
    buf.save(path)
    data = bytearray(path.read_bytes())

    flipped = tmp_path / "flipped.bin"
    bad = bytearray(data)
    bad[len(bad) // 3] ^= 0xFF  # inside the frame data
    flipped.write_bytes(bytes(bad))
    with pytest.raises(ReplayLoadError, match="checksum"):
        ReplayBuffer.load(flipped)

    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ReplayLoadError, match="truncated"):
        ReplayBuffer.load(truncated)

    with pytest.raises(ReplayLoadError, match="does not exist"):
        ReplayBuffer.load(tmp_path / "nope.bin")

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"hello world, not a replay file at all" * 10)
    with pytest.raises(ReplayLoadError, match="not a distrl-agents replay file"):
        ReplayBuffer.load(garbage)
    assert issubclass(ReplayLoadError, ValueError)

    # A failed load into an existing buffer leaves it empty, never partially filled.
    target = ReplayBuffer(90, num_envs=3, stack_size=4, n_step=3, prioritized=True, seed=11)
    fill_atari(target, 40)
    assert len(target) > 0
    with pytest.raises(ReplayLoadError, match="checksum"):
        target.load(flipped)
    assert len(target) == 0 and target.num_added == 0
    with pytest.raises(ValueError, match="cannot sample"):
        target.sample(1)

    # Loading into a buffer with another configuration says what differs.
    other = ReplayBuffer(90, num_envs=3, stack_size=4, n_step=5, prioritized=True)
    with pytest.raises(ReplayLoadError, match="n_step"):
        other.load(path)


def fill_atari(buf: ReplayBuffer, steps: int) -> None:
    z = np.zeros(buf.num_envs)
    for t in range(steps):
        obs = np.full((buf.num_envs, buf.stack_size, 84, 84), t % 256, np.uint8)
        buf.add(obs, z, z, z > 0, z > 0)


# --------------------------------------------------------------------------- misuse
def test_misuse_raises_clear_value_errors() -> None:
    buf = ReplayBuffer(100, num_envs=2, n_step=3)
    with pytest.raises(ValueError, match="no complete transition yet"):
        buf.sample(1)
    fill_atari(buf, 6)  # 3 complete windows per env
    assert len(buf) == 6
    with pytest.raises(ValueError, match="only 6 transitions"):
        buf.sample(7)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        buf.sample(0)
    z = np.zeros(2)
    with pytest.raises(ValueError, match=r"obs must have shape \[num_envs, stack_size"):
        buf.add(np.zeros((2, 4, 84, 80), np.uint8), z, z, z > 0, z > 0)
    with pytest.raises(ValueError, match=r"obs must have shape"):
        buf.add(np.zeros((3, 4, 84, 84), np.uint8), z, z, z > 0, z > 0)
    with pytest.raises(ValueError, match="dtype is float32"):
        buf.add(np.zeros((2, 4, 84, 84), np.float32), z, z, z > 0, z > 0)
    with pytest.raises(ValueError, match=r"dtype is torch\.float32"):
        buf.add(torch.zeros((2, 4, 84, 84)), z, z, z > 0, z > 0)
    with pytest.raises(ValueError, match="action must have one value per environment"):
        buf.add(np.zeros((2, 4, 84, 84), np.uint8), [0], z, z > 0, z > 0)
    with pytest.raises(ValueError, match="capacity 10 is too small"):
        ReplayBuffer(10, num_envs=2, n_step=3)
    with pytest.raises(ValueError, match="priority_eps must be > 0"):
        ReplayBuffer(100, prioritized=True, priority_eps=0.0)
    with pytest.raises(ValueError, match="storage_backend"):
        ReplayBuffer(100, storage_backend="zarr")

    pbuf = ReplayBuffer(100, prioritized=True)
    fill_atari(pbuf, 10)
    batch = pbuf.sample(4)
    with pytest.raises(ValueError, match="finite"):
        pbuf.update_priorities(batch.indices, torch.tensor([1.0, float("nan"), 1.0, 1.0]))
    with pytest.raises(ValueError, match="one priority per sampled index"):
        pbuf.update_priorities(batch.indices, torch.ones(3))
    with pytest.raises(ValueError, match="indices must be in"):
        pbuf.update_priorities(np.array([100]), np.ones(1))
    assert len(buf) == 6 and buf.num_added == 12  # failed adds changed nothing


def test_newest_frame_only_and_torch_inputs_accepted() -> None:
    buf = ReplayBuffer(50, frame_shape=(3,), frame_dtype=np.float32, stack_size=1, n_step=1)
    for t in range(5):
        buf.add(
            torch.full((1, 3), float(t + 1)),
            torch.tensor([t]),
            torch.tensor([0.5]),
            [False],
            [False],
        )
    batch = buf.batch_at(buf.sampleable_indices())
    assert batch.obs.shape == (4, 1, 3) and batch.obs.dtype == torch.float32
    assert batch.obs[:, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert batch.next_obs[:, 0, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert batch.action.tolist() == [0, 1, 2, 3]


def test_save_writes_only_the_filled_part_of_the_rings(tmp_path) -> None:
    big = ReplayBuffer(10_000, num_envs=2, n_step=3, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs = rng.integers(0, 255, (2, 4, 84, 84), dtype=np.uint8)
        big.add(obs, [1, 2], [0.5, -1.0], [False, False], [False, False])
    path = tmp_path / "replay.bin"
    big.save(path)
    frame_bytes = 84 * 84
    # 2 envs x 50 frames of pixels, plus metadata: far below the 10,000-frame capacity.
    assert path.stat().st_size < 100 * frame_bytes + big.capacity * 64
    restored = ReplayBuffer.load(path)
    a, b = big.sample(16), restored.sample(16)
    for name in ("obs", "next_obs", "reward", "discount", "action"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
