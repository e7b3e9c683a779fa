"""Tiny environments with known answers, for learning tests.

- ``LongTailBandit``: one step, fixed observation; action 0 pays a reward drawn from a discrete
  long-tailed distribution spanning two orders of magnitude, action 1 a constant. The true
  return distribution of each action is known exactly (``return_distribution``).
- ``TwoStepBootstrap``: a constant reward, then a long-tailed random reward one step later; the
  first state's return distribution is known exactly but reachable only by bootstrapping.
- ``Chain``: a short corridor with a small reward at the near end and a large one at the far end;
  the optimal policy is "always right" for gamma > (small / large)^(1 / (length - 3)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Long-tailed reward of LongTailBandit action 0: values span 0.1 .. 20 (two orders of magnitude).
LONG_TAIL_VALUES = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0], dtype=np.float32)
LONG_TAIL_PROBS = np.array([0.30, 0.25, 0.20, 0.12, 0.07, 0.04, 0.02], dtype=np.float64)


@dataclass
class StepResult:
    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool


class LongTailBandit:
    """One-step task: ``reset() -> obs``; ``step(a)`` ends the episode (``terminated=True``).

    Action 0: reward ~ ``LONG_TAIL_VALUES`` with ``LONG_TAIL_PROBS`` (mean 1.795).
    Action 1: reward = ``constant_reward`` (1.0).
    """

    num_actions = 2

    def __init__(self, obs_dim: int = 4, constant_reward: float = 1.0, seed: int = 0) -> None:
        self.obs_dim = obs_dim
        self.obs_shape = (obs_dim,)
        self.constant_reward = float(constant_reward)
        self.rng = np.random.default_rng(seed)

    def observation(self) -> np.ndarray:
        return np.ones(self.obs_dim, dtype=np.float32)

    def reset(self) -> np.ndarray:
        return self.observation()

    def sample_reward(self, action: np.ndarray) -> np.ndarray:
        """Rewards ``[B]`` for actions ``[B]``."""
        action = np.asarray(action)
        tail = self.rng.choice(LONG_TAIL_VALUES, size=action.shape, p=LONG_TAIL_PROBS)
        return np.where(action == 0, tail, self.constant_reward).astype(np.float32)

    def step(self, action: int) -> StepResult:
        reward = float(self.sample_reward(np.array([action]))[0])
        return StepResult(self.observation(), reward, True, False)

    def return_distribution(self, action: int) -> tuple[np.ndarray, np.ndarray]:
        """True return distribution ``(values, probs)`` of ``action``."""
        if action == 0:
            return LONG_TAIL_VALUES.astype(np.float64), LONG_TAIL_PROBS.copy()
        return np.array([self.constant_reward]), np.array([1.0])

    def true_q(self) -> np.ndarray:
        return np.array([float((v * p).sum()) for v, p in map(self.return_distribution, range(2))])


class TwoStepBootstrap:
    """Two states, one action: ``s0`` pays ``first_reward`` and moves to ``s1``; ``s1`` pays a
    reward ~ ``LONG_TAIL_VALUES`` with ``LONG_TAIL_PROBS`` and ends the episode.

    ``Z(s0) = first_reward + gamma * Z(s1)``: the distribution of ``s0`` is learned only through
    the bootstrapped target from ``s1``. ``sample_batch`` draws transitions from both states
    (``s0`` with probability ``p_first``), as a replay buffer of this task would hold them.
    """

    num_actions = 1

    def __init__(
        self,
        obs_dim: int = 4,
        first_reward: float = 1.0,
        gamma: float = 0.9,
        p_first: float = 0.5,
        seed: int = 0,
    ) -> None:
        if obs_dim < 2:
            raise ValueError(f"obs_dim must be >= 2, got {obs_dim}")
        self.obs_dim = obs_dim
        self.obs_shape = (obs_dim,)
        self.first_reward = float(first_reward)
        self.gamma = float(gamma)
        self.p_first = float(p_first)
        self.rng = np.random.default_rng(seed)

    def observation(self, state: int) -> np.ndarray:
        """One-hot observation of state 0 (``s0``) or 1 (``s1``), ``[obs_dim]`` float32."""
        obs = np.zeros(self.obs_dim, dtype=np.float32)
        obs[state] = 1.0
        return obs

    def sample_batch(
        self, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(obs, action, reward, discount, next_obs)`` for ``size`` transitions."""
        first = self.rng.random(size) < self.p_first
        eye = np.eye(self.obs_dim, dtype=np.float32)
        obs = np.where(first[:, None], eye[0], eye[1])
        next_obs = eye[np.ones(size, dtype=np.int64)]  # s1 (ignored after s1: discount 0)
        tail = self.rng.choice(LONG_TAIL_VALUES, size=size, p=LONG_TAIL_PROBS)
        reward = np.where(first, self.first_reward, tail).astype(np.float32)
        discount = np.where(first, self.gamma, 0.0).astype(np.float32)
        return obs, np.zeros(size, dtype=np.int64), reward, discount, next_obs

    def train(self, agent: Any, steps: int, batch_size: int = 64) -> None:
        """Train ``agent`` offline on ``steps`` batches from :meth:`sample_batch`: target synced
        every 50 updates, learning rates divided by 10 for the last 40% of the updates."""
        import torch

        from distrl_agents.types import Batch

        for step in range(steps):
            if step == int(0.6 * steps):
                for opt in agent.optimizers:
                    for group in opt.param_groups:
                        group["lr"] *= 0.1
            obs, action, reward, discount, next_obs = self.sample_batch(batch_size)
            agent.learn(
                Batch(
                    obs=torch.from_numpy(obs),
                    action=torch.from_numpy(action),
                    reward=torch.from_numpy(reward),
                    discount=torch.from_numpy(discount),
                    next_obs=torch.from_numpy(next_obs),
                    weights=torch.ones(batch_size),
                    indices=torch.arange(batch_size),
                )
            )
            if step % 50 == 0:
                agent.sync_target()

    def return_distribution(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """True return distribution ``(values, probs)`` of ``state``."""
        values = LONG_TAIL_VALUES.astype(np.float64)
        if state == 0:
            values = self.first_reward + self.gamma * values
        return values, LONG_TAIL_PROBS.copy()

    def true_q(self, state: int) -> float:
        values, probs = self.return_distribution(state)
        return float((values * probs).sum())


class Chain:
    """Corridor of ``length`` states with one-hot observations; actions 0 = left, 1 = right.

    Start in state 1. Stepping into state 0 ends the episode with ``small_reward``; reaching
    state ``length - 1`` ends it with ``large_reward``. Other steps pay 0. Episodes are
    truncated after ``max_steps``. Optimal policy: right in every state (for gamma close to 1).
    """

    num_actions = 2

    def __init__(
        self,
        length: int = 8,
        small_reward: float = 0.1,
        large_reward: float = 1.0,
        max_steps: int = 30,
    ) -> None:
        if length < 3:
            raise ValueError(f"length must be >= 3, got {length}")
        self.length = length
        self.obs_shape = (length,)
        self.small_reward = small_reward
        self.large_reward = large_reward
        self.max_steps = max_steps
        self.state = 1
        self.t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, dtype=np.float32)
        obs[self.state] = 1.0
        return obs

    def reset(self) -> np.ndarray:
        self.state = 1
        self.t = 0
        return self._obs()

    def step(self, action: int) -> StepResult:
        self.t += 1
        self.state += 1 if int(action) == 1 else -1
        reward, terminated = 0.0, False
        if self.state == 0:
            reward, terminated = self.small_reward, True
        elif self.state == self.length - 1:
            reward, terminated = self.large_reward, True
        return StepResult(
            self._obs(), reward, terminated, self.t >= self.max_steps and not terminated
        )

    def optimal_return(self, gamma: float) -> float:
        """Discounted return of the optimal (always right) policy from the start state."""
        return float(gamma ** (self.length - 3) * self.large_reward)
