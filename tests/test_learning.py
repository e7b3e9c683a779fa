"""Learning tests on tiny tasks with known answers, for every agent.

1. Distribution recovery on a one-step long-tailed bandit: the predicted return distribution is
   within 1-Wasserstein distance 5% of the reward range of the truth, and Q within 5% of the true
   mean (DQN: the mean only).
2. Control: a short chain whose optimal policy is "always right", solved within a fixed budget.

Batches are fed directly (bandit) or from a tiny ring buffer inside the test (chain).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distrl_agents.agents import make_agent
from distrl_agents.distribution import ReturnDistribution
from distrl_agents.envs.toy import LONG_TAIL_VALUES, Chain, LongTailBandit
from distrl_agents.types import Batch

MLP = {"torso": "mlp", "mlp_sizes": [64], "hidden": 64}

# Test overrides of the Atari presets: a larger learning rate for a tiny network, fewer atoms
# where that keeps the test fast, and task-appropriate supports.
BANDIT_HPARAMS: dict[str, dict] = {
    # Huber (kappa = 1) estimates a robust location of a skewed reward, not its mean; the test asks
    # for the mean, so DQN uses an (effectively) squared loss here.
    "dqn": {"huber_kappa": 100.0, "optimizer": "adam", "lr": 1e-3, "optimizer_eps": 1e-8},
    # Support covering the rewards [0.1, 20].
    "c51": {"num_atoms": 101, "v_min": 0.0, "v_max": 20.0, "lr": 1e-3},
    "qrdqn": {"num_quantiles": 50, "lr": 1e-3},
    "iqn": {
        "num_tau_samples": 32,
        "num_tau_prime_samples": 32,
        "num_quantile_samples": 32,
        "lr": 1e-3,
    },
    "fqf": {"num_fractions": 32, "lr": 1e-3, "fraction_lr": 1e-4},
}
BANDIT_STEPS = 1500
LR_DROP_AT = 900  # lr x 0.1 for the last 600 steps: the final iterate then averages out SGD noise


def wasserstein1(v1: np.ndarray, p1: np.ndarray, v2: np.ndarray, p2: np.ndarray) -> float:
    """W1 between two discrete distributions: integral of |F1(x) - F2(x)| dx."""
    xs = np.unique(np.concatenate([v1, v2]))
    f1 = np.array([p1[v1 <= x].sum() for x in xs])
    f2 = np.array([p2[v2 <= x].sum() for x in xs])
    return float((np.abs(f1 - f2)[:-1] * np.diff(xs)).sum())


def _predicted(agent, obs: torch.Tensor) -> ReturnDistribution:  # type: ignore[no-untyped-def]
    """The agent's predicted distribution; IQN is read on a dense fixed tau grid."""
    agent.eval()
    with torch.no_grad():
        if agent.name == "iqn":
            taus = (torch.arange(200, dtype=torch.float32) + 0.5) / 200
            return agent.distribution(agent.online, obs, taus=taus)
        return agent.distribution(agent.online, obs)


def _bandit_batch(env: LongTailBandit, rng: np.random.Generator, size: int) -> Batch:
    obs = torch.from_numpy(np.tile(env.observation(), (size, 1)))
    action = rng.integers(0, 2, size=size)
    reward = env.sample_reward(action)
    return Batch(
        obs=obs,
        action=torch.from_numpy(action.astype(np.int64)),
        reward=torch.from_numpy(reward),
        discount=torch.zeros(size),
        next_obs=obs,
        weights=torch.ones(size),
        indices=torch.arange(size),
    )


def train_on_bandit(agent, env: LongTailBandit, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """The bandit schedule every agent's recovery test uses: BANDIT_STEPS batches of 64, the
    learning rate divided by 10 at LR_DROP_AT."""
    for step in range(BANDIT_STEPS):
        if step == LR_DROP_AT:
            for opt in agent.optimizers:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
        agent.learn(_bandit_batch(env, rng, 64))


# Reduced precision must not learn worse: the same tests in bf16 autocast (slow: run in CI).
PRECISIONS = ["fp32", pytest.param("bf16", marks=pytest.mark.slow)]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", list(BANDIT_HPARAMS))
def test_distribution_recovery_long_tail(name: str, precision: str) -> None:
    env = LongTailBandit(seed=1)
    rng = np.random.default_rng(2)
    agent = make_agent(
        name,
        num_actions=2,
        obs_shape=env.obs_shape,
        network=MLP,
        seed=3,
        precision=precision,
        **BANDIT_HPARAMS[name],
    )
    train_on_bandit(agent, env, rng)
    dist = _predicted(agent, torch.from_numpy(env.observation()[None]))
    q = dist.q_values()[0].numpy()
    true_q = env.true_q()
    reward_range = float(LONG_TAIL_VALUES.max() - LONG_TAIL_VALUES.min())
    report = {}
    for a in range(2):
        assert abs(q[a] - true_q[a]) <= 0.05 * abs(true_q[a]), (name, a, q, true_q)
        if name == "dqn":
            continue
        values = dist.values[0, a].double().numpy()
        probs = dist.probs[0, a].double().numpy()
        tv, tp = env.return_distribution(a)
        report[a] = wasserstein1(values, probs, tv, tp)
        assert report[a] <= 0.05 * reward_range, (name, a, report)


def _chain_run(name: str, hparams: dict, steps: int, seed: int = 0) -> tuple[Chain, object]:
    env = Chain(length=6, small_reward=0.1, large_reward=1.0, max_steps=20)
    gamma = 0.9
    agent = make_agent(
        name, num_actions=2, obs_shape=env.obs_shape, network=MLP, seed=seed, **hparams
    )
    cap = steps
    obs_buf = np.zeros((cap, *env.obs_shape), np.float32)
    next_buf = np.zeros_like(obs_buf)
    act_buf = np.zeros(cap, np.int64)
    rew_buf = np.zeros(cap, np.float32)
    disc_buf = np.zeros(cap, np.float32)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    warmup, batch_size, sync_every = 200, 32, 50
    for t in range(steps):
        epsilon = max(0.05, 1.0 - t / (0.5 * steps))
        action = int(agent.act(obs[None], epsilon=epsilon)[0])
        step = env.step(action)
        obs_buf[t], act_buf[t], rew_buf[t], next_buf[t] = obs, action, step.reward, step.obs
        disc_buf[t] = 0.0 if step.terminated else gamma
        obs = env.reset() if (step.terminated or step.truncated) else step.obs
        if t >= warmup:
            idx = rng.integers(0, t + 1, size=batch_size)
            agent.learn(
                Batch(
                    obs=torch.from_numpy(obs_buf[idx]),
                    action=torch.from_numpy(act_buf[idx]),
                    reward=torch.from_numpy(rew_buf[idx]),
                    discount=torch.from_numpy(disc_buf[idx]),
                    next_obs=torch.from_numpy(next_buf[idx]),
                    weights=torch.ones(batch_size),
                    indices=torch.from_numpy(idx),
                )
            )
            if t % sync_every == 0:
                agent.sync_target()
    return env, agent


CHAIN_HPARAMS: dict[str, dict] = {
    "dqn": {"optimizer": "adam", "lr": 1e-3, "optimizer_eps": 1e-8},
    "c51": {"num_atoms": 21, "v_min": -0.5, "v_max": 1.5, "lr": 1e-3},
    "qrdqn": {"num_quantiles": 16, "lr": 1e-3},
    "iqn": {
        "num_tau_samples": 16,
        "num_tau_prime_samples": 16,
        "num_quantile_samples": 16,
        "lr": 1e-3,
    },
    "fqf": {"num_fractions": 16, "lr": 1e-3, "fraction_lr": 1e-4},
}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", list(CHAIN_HPARAMS))
def test_control_chain(name: str, precision: str) -> None:
    env, agent = _chain_run(name, {**CHAIN_HPARAMS[name], "precision": precision}, steps=1500)
    assert_chain_solved(env, agent)


def assert_chain_solved(env: Chain, agent) -> None:  # type: ignore[no-untyped-def]
    """Greedy policy: right in every non-terminal state, reaching the large reward."""
    agent.eval()
    states = np.eye(env.length, dtype=np.float32)[1 : env.length - 1]
    assert (agent.act(states) == 1).all(), agent.act(states)
    obs, ret = env.reset(), 0.0
    for _ in range(env.max_steps):
        step = env.step(int(agent.act(obs[None])[0]))
        ret += step.reward
        obs = step.obs
        if step.terminated:
            break
    assert ret == 1.0
