"""HL-Gauss (Farebrother et al. 2024): target histograms against the closed form and hand cases,
the loss against a hand-built cross-entropy, and learning the mean on tasks with known answers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_learning import MLP, _chain_run, assert_chain_solved, train_on_bandit

from distrl_agents.agents import make_agent
from distrl_agents.envs.toy import LongTailBandit, TwoStepBootstrap
from distrl_agents.losses.hlgauss import hl_gauss_probs, two_hot_probs
from distrl_agents.types import Batch


def _naive_hl_gauss(y: float, edges: list[float], sigma: float) -> list[float]:
    """The truncated Gaussian's mass per bin, one bin at a time, with Phi from ``math.erf``."""

    def phi(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    total = phi((edges[-1] - y) / sigma) - phi((edges[0] - y) / sigma)
    return [
        (phi((edges[i + 1] - y) / sigma) - phi((edges[i] - y) / sigma)) / total
        for i in range(len(edges) - 1)
    ]


@pytest.mark.parametrize("sigma_ratio", [0.75, 2.0])
def test_hl_gauss_histogram_is_the_closed_form(sigma_ratio: float) -> None:
    edges = [-3.0 + 8.0 * i / 7 for i in range(8)]  # 7 bins of width 8/7 on [-3, 5]
    sigma = sigma_ratio * 8.0 / 7
    ys = [-3.0, -2.5, 0.0, 0.3, 1.0 + 1e-3, 4.9, 5.0]
    got = hl_gauss_probs(torch.tensor(ys), torch.tensor(edges), sigma)
    want = torch.tensor([_naive_hl_gauss(y, edges, sigma) for y in ys], dtype=torch.float32)
    assert got.dtype == torch.float32 and got.shape == (len(ys), 7)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    torch.testing.assert_close(got.sum(-1), torch.ones(len(ys)))


def test_hl_gauss_mean_is_the_target_away_from_the_edges() -> None:
    edges = torch.linspace(-10.0, 10.0, 52)  # the preset: 51 bins on [-10, 10]
    centres, zeta = (edges[1:] + edges[:-1]) / 2, 20.0 / 51
    y = torch.tensor([-7.0, -0.1, 0.0, 2.345, 7.5])  # >= 3 sigma inside the support
    probs = hl_gauss_probs(y, edges, 0.75 * zeta)
    torch.testing.assert_close((probs * centres).sum(-1), y, rtol=0, atol=1e-4 * zeta)
    # At an edge the truncated Gaussian's mean lies inside the support.
    at_edges = hl_gauss_probs(torch.tensor([-10.0, 10.0]), edges, 0.75 * zeta)
    mean = (at_edges * centres).sum(-1)
    assert mean[0] > -10.0 and mean[1] < 10.0


def test_two_hot_hand_cases() -> None:
    centres = torch.tensor([0.0, 1.0, 2.0, 3.0])
    y = torch.tensor([1.25, 3.0, -5.0, 2.0, 0.5, 7.0])
    want = torch.tensor(
        [
            [0.0, 0.75, 0.25, 0.0],  # 1.25 = 0.75 * 1 + 0.25 * 2
            [0.0, 0.0, 0.0, 1.0],  # on the last centre
            [1.0, 0.0, 0.0, 0.0],  # below the support: clipped to z_0
            [0.0, 0.0, 1.0, 0.0],  # on a centre
            [0.5, 0.5, 0.0, 0.0],  # halfway
            [0.0, 0.0, 0.0, 1.0],  # above: clipped to z_last
        ]
    )
    got = two_hot_probs(y, centres)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close((got * centres).sum(-1), y.clamp(0.0, 3.0))


def _agent(**kw):  # type: ignore[no-untyped-def]
    network = {"torso": "mlp", "mlp_sizes": [16], "hidden": 16}
    return make_agent("hlgauss", num_actions=3, obs_shape=(5,), network=network, **kw)


def test_head_atoms_are_the_bin_centres() -> None:
    agent = _agent(num_bins=8, v_min=-2.0, v_max=6.0)
    centres = torch.arange(8, dtype=torch.float32) - 1.5  # bins of width 1 on [-2, 6]
    torch.testing.assert_close(agent.online.head.support, centres)


@pytest.mark.parametrize("target", ["hlgauss", "twohot"])
@pytest.mark.parametrize("double_dqn", [False, True])
def test_loss_is_the_cross_entropy_against_the_scalar_targets_histogram(
    target: str, double_dqn: bool
) -> None:
    agent = _agent(num_bins=11, v_min=-5.0, v_max=6.0, target=target, double_dqn=double_dqn)
    agent.online.head.stream.advantage[2].bias.data.normal_()  # a non-uniform target network
    agent.sync_target()
    with torch.no_grad():
        for p in agent.online.parameters():
            p.add_(0.1 * torch.randn_like(p))  # online and target differ
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        obs=torch.randn(6, 5, generator=g),
        action=torch.tensor([0, 1, 2, 0, 1, 2]),
        reward=torch.tensor([0.5, -1.0, 2.0, 40.0, -40.0, 0.0]),  # two outside the support
        discount=torch.tensor([0.9, 0.0, 0.99, 0.9, 0.0, 0.5]),
        next_obs=torch.randn(6, 5, generator=g),
        weights=torch.ones(6),
        indices=torch.arange(6),
    )
    out = agent.compute_loss(batch)
    with torch.no_grad():
        q_target = agent.target(batch.next_obs).q_values()  # [B, A]
        select = agent.online(batch.next_obs).q_values() if double_dqn else q_target
        a_star = select.argmax(-1)
        y = batch.reward + batch.discount * q_target[torch.arange(6), a_star]
        centres = torch.arange(11, dtype=torch.float32) - 4.5
        if target == "hlgauss":
            edges = [-5.0 + i for i in range(12)]
            probs = torch.tensor(
                [_naive_hl_gauss(v, edges, 0.75) for v in y.clamp(-5.0, 6.0).tolist()]
            )
        else:
            probs = two_hot_probs(y, centres)
        logits = agent.online.head.logits(agent.online.torso(batch.obs))
        log_p = F.log_softmax(logits[torch.arange(6), batch.action], dim=-1)
    torch.testing.assert_close(out.per_sample, -(probs * log_p).sum(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.q_taken, (log_p.exp() * centres).sum(-1))


def test_config_is_checked() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"target": "gauss"}, "target"),
        ({"sigma_ratio": 0.0}, "sigma_ratio"),
        ({"v_min": 1.0, "v_max": 1.0}, "v_min"),
        ({"num_bins": 1}, "num_bins"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            _agent(**bad)


# Learning: the mean of tasks with known answers. Supports leave >= 10 sigma between the
# returns and the edges, where the truncated Gaussian's histogram would move the mean inwards.
# Tolerance 5% of Q, as tests/test_learning.py: the reward's long tail (20 with probability
# 0.02) leaves the last updates' sample mean a few percent from the true mean.
@pytest.mark.parametrize("target", ["hlgauss", "twohot"])
def test_learns_the_mean_of_a_long_tailed_bandit(target: str) -> None:
    env = LongTailBandit(seed=1)
    agent = make_agent(
        "hlgauss",
        num_actions=2,
        obs_shape=env.obs_shape,
        network=MLP,
        seed=3,
        num_bins=96,  # bins of 0.25 on [-2, 22]: rewards 0.1 .. 20
        v_min=-2.0,
        v_max=22.0,
        target=target,
        lr=1e-3,
    )
    train_on_bandit(agent, env, np.random.default_rng(2))
    agent.eval()
    with torch.no_grad():
        q = agent.distribution(agent.online, torch.from_numpy(env.observation()[None]))
    q_values, true_q = q.q_values()[0].numpy(), env.true_q()  # true Q: 1.795 and 1.0
    np.testing.assert_allclose(q_values, true_q, rtol=0.05)


def test_learns_a_bootstrapped_mean() -> None:
    """Q(s0) = 1 + 0.9 Q(s1) is learned only through the scalar bootstrapped target."""
    env = TwoStepBootstrap(seed=1)
    agent = make_agent(
        "hlgauss",
        num_actions=1,
        obs_shape=env.obs_shape,
        network=MLP,
        seed=3,
        num_bins=96,
        v_min=-2.0,
        v_max=22.0,
        lr=1e-3,
    )
    env.train(agent, steps=1500)
    agent.eval()
    obs = torch.from_numpy(np.stack([env.observation(0), env.observation(1)]))
    with torch.no_grad():
        q = agent.distribution(agent.online, obs).q_values()[:, 0].numpy()
    np.testing.assert_allclose(q, [env.true_q(0), env.true_q(1)], rtol=0.05)  # 2.6155, 1.795


def test_solves_the_chain() -> None:
    hparams = {"num_bins": 30, "v_min": -1.0, "v_max": 2.0, "lr": 1e-3}  # returns in [0, 1]
    env, agent = _chain_run("hlgauss", hparams, steps=1500)
    assert_chain_solved(env, agent)
