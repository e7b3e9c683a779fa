"""Expectile agent (ER-DQN / EDRL, Rowland et al. 2019): unit tests and the shared learning tests.

Learning tests are those of ``tests/test_learning.py`` (same tasks, budgets and tolerances); the
predicted distribution is decoded from the learned expectiles by imputation before comparing it
with the truth, because expectiles are statistics, not atoms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_learning import MLP as LEARN_MLP
from test_learning import (
    _chain_run,
    assert_chain_solved,
    train_on_bandit,
    wasserstein1,
)

from distrl_agents.agents import agent_class, make_agent
from distrl_agents.agents.expectile import ExpectileAgent
from distrl_agents.distribution import ReturnDistribution
from distrl_agents.envs.toy import LONG_TAIL_PROBS, LONG_TAIL_VALUES, LongTailBandit
from distrl_agents.expectiles import expectile_levels, expectiles, impute_samples
from distrl_agents.losses import expectile_loss
from distrl_agents.networks import ExpectileHead
from distrl_agents.risk import make_action_value_fn
from distrl_agents.types import Batch

MLP = {"torso": "mlp", "mlp_sizes": [16], "hidden": 16}
A, OBS = 3, (5,)
SMALL = {"num_expectiles": 7, "imputation_iters": 8, "lr": 1e-3}
GAMMA = 0.9


def _agent(**kw: Any) -> ExpectileAgent:
    network = kw.pop("network", MLP)
    agent = make_agent(
        "expectile", num_actions=A, obs_shape=OBS, network=network, **{**SMALL, **kw}
    )
    assert isinstance(agent, ExpectileAgent)
    return agent


def _batch(batch_size: int = 6, seed: int = 5) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(batch_size, *OBS, generator=g),
        action=torch.randint(0, A, (batch_size,), generator=g),
        reward=torch.randn(batch_size, generator=g),
        discount=torch.tensor([0.99, 0.0, 0.9801, 0.99, 0.0, 0.99])[:batch_size],
        next_obs=torch.randn(batch_size, *OBS, generator=g),
        weights=torch.rand(batch_size, generator=g) + 0.5,
        indices=torch.arange(batch_size),
    )


def _pin_outputs(agent: ExpectileAgent, net: torch.nn.Module, expectiles_AK: torch.Tensor) -> None:
    """Make ``net`` output ``expectiles_AK`` ``[A, K]`` for every state (zero last weight)."""
    head = net.head
    assert isinstance(head, ExpectileHead)
    last = head.stream.advantage[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(expectiles_AK.reshape(-1))


# ----------------------------------------------------------------------------- head / read-off
def test_levels_and_q_values_is_the_half_expectile() -> None:
    agent = _agent()
    k = agent.config.num_expectiles
    taus = agent.taus
    assert torch.allclose(taus, torch.arange(1, k + 1, dtype=torch.float32) / (k + 1))
    assert taus[agent.mean_index].item() == 0.5
    assert torch.allclose(taus + taus.flip(0), torch.ones(k))  # symmetric about 0.5
    dist = agent.distribution(agent.online, torch.randn(4, *OBS))
    assert dist.values.shape == (4, A, k) and dist.probs.shape == (4, A, k)
    assert dist.taus is not None and dist.taus.shape == (4, k)
    assert torch.equal(dist.q_values(), dist.values[..., agent.mean_index])
    assert torch.equal(dist.probs.sum(-1), torch.ones(4, A))
    # The 0.5-expectile is the mean: a pinned head on exact expectiles reads off the true mean.
    atoms, probs = torch.tensor([0.0, 1.0, 10.0]), torch.tensor([0.5, 0.3, 0.2])
    e = expectiles(atoms, probs, taus.double()).float()
    _pin_outputs(agent, agent.online, e.expand(A, -1))
    q = agent.distribution(agent.online, torch.randn(2, *OBS)).q_values()
    assert torch.allclose(q, torch.full((2, A), 2.3), atol=1e-5)
    assert ExpectileAgent.expectile_atoms is True
    assert getattr(agent_class("expectile"), "expectile_atoms", False) is True
    assert expectile_levels(31)[15].item() == 0.5


def test_hparam_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"num_expectiles.*odd"):
        _agent(num_expectiles=32)
    with pytest.raises(ValueError, match="num_expectiles"):
        _agent(num_expectiles=0)
    with pytest.raises(ValueError, match="imputation_iters"):
        _agent(imputation_iters=0)
    with pytest.raises(ValueError, match="valid hparams"):
        _agent(num_quantiles=8)


# ----------------------------------------------------------------------------- target / loss
def test_target_is_built_by_imputation_on_a_two_point_case() -> None:
    """Next state: every action's expectiles are those of ``{0 w.p. 0.75, 4 w.p. 0.25}``."""
    agent = _agent(num_expectiles=15, imputation_iters=16)
    taus = agent.taus
    atoms, probs = torch.tensor([0.0, 4.0]), torch.tensor([0.75, 0.25])
    e_next = expectiles(atoms, probs, taus.double()).float()  # [K]
    _pin_outputs(agent, agent.target, e_next.expand(A, -1))
    batch = _batch()
    reward, discount = batch.reward, batch.discount

    next_dist = agent.distribution(agent.target, batch.next_obs)
    assert torch.allclose(next_dist.values, e_next.expand(6, A, -1))
    target, residual = agent.imputed_target(reward, discount, next_dist.values[:, 0])
    assert target.shape == (6, 15) and residual.shape == (6,)

    # Independent reference: z = r + gamma * Impute(e'), Rowland et al. 2019 (EDRL).
    z_next = impute_samples(e_next, taus, max_iters=16)
    assert isinstance(z_next, torch.Tensor)
    expected = reward[:, None] + discount[:, None] * z_next[None]
    assert torch.allclose(target, expected, atol=1e-5)
    # Terminal rows (discount 0) regress on the reward alone.
    assert torch.equal(target[1], reward[1].expand(15))
    assert residual[1].item() == 0.0 and residual[0].item() < 0.05
    # The imputed samples have the bootstrap expectiles (up to the few-iteration residual) ...
    assert (expectiles(z_next, None, taus) - e_next).abs().max().item() < 0.1
    # ... and they are samples of the two-point law, unlike the expectiles themselves (the
    # "naive" target that collapses the distribution, Rowland et al. 2019).
    k = 15
    w_imputed = wasserstein1(
        z_next.double().numpy(), np.full(k, 1 / k), atoms.double().numpy(), probs.double().numpy()
    )
    w_naive = wasserstein1(
        e_next.double().numpy(), np.full(k, 1 / k), atoms.double().numpy(), probs.double().numpy()
    )
    assert w_imputed < 0.25 < 0.75 < w_naive, (w_imputed, w_naive)  # 0.17 vs 0.92

    # The agent's loss is the expectile loss of the taken action's expectiles against z.
    out = agent.compute_loss(batch)
    pred = agent.distribution(agent.online, batch.obs).for_actions(batch.action).values[:, 0]
    assert torch.allclose(out.per_sample, expectile_loss(pred, expected, taus), atol=1e-5)
    assert torch.allclose(out.q_taken, pred[:, agent.mean_index].detach())
    assert torch.allclose(out.metrics["imputation_residual"], residual)


def test_terminal_only_batch_skips_imputation() -> None:
    agent = _agent()
    batch = _batch()
    batch.discount = torch.zeros(6)
    out = agent.compute_loss(batch)
    assert torch.equal(out.metrics["imputation_residual"], torch.zeros(6))
    pred = agent.distribution(agent.online, batch.obs).for_actions(batch.action).values[:, 0]
    target = batch.reward[:, None].expand(-1, agent.config.num_expectiles)
    assert torch.allclose(out.per_sample, expectile_loss(pred, target, agent.taus))


def test_per_sample_loss_and_metrics() -> None:
    agent = _agent()
    result = agent.learn(_batch())
    assert result.loss.shape == (6,) and not result.loss.requires_grad
    assert (result.loss >= 0).all()
    assert set(result.metrics) == {"loss", "q_mean", "grad_norm", "imputation_residual"}
    assert all(np.isfinite(v) for v in result.metrics.values())
    assert agent.num_updates == 1


# ----------------------------------------------------------------------------- acting
def test_risk_sensitive_acting_imputes_before_distorting() -> None:
    """Action 0: ``{0 w.p. 0.5, 3 w.p. 0.5}`` (mean 1.5); action 1: constant 1.2 (A = 2)."""
    fn = make_action_value_fn("cvar", 0.25, from_expectiles=True)
    agent = make_agent(
        "expectile",
        num_actions=2,
        obs_shape=OBS,
        network=MLP,
        num_expectiles=15,
        action_value_fn=fn,
    )
    assert isinstance(agent, ExpectileAgent)
    taus = agent.taus.double()
    risky = expectiles(torch.tensor([0.0, 3.0]), None, taus).float()
    _pin_outputs(agent, agent.online, torch.stack([risky, torch.full_like(risky, 1.2)]))
    obs = np.zeros((3, *OBS), np.float32)
    assert (agent.act(obs) == 1).all()  # CVaR_0.25: 0 < 1.2
    neutral = make_agent("expectile", num_actions=2, obs_shape=OBS, network=MLP, num_expectiles=15)
    neutral.online.load_state_dict(agent.online.state_dict())
    assert (neutral.act(obs) == 0).all()  # means: 1.5 > 1.2


# ----------------------------------------------------------------------------- learning
def _decode(dist: ReturnDistribution, action: int, num_samples: int = 100) -> np.ndarray:
    """Equal-weight samples imputed from the learned expectiles of ``action`` (state 0)."""
    assert dist.taus is not None
    z = impute_samples(dist.values[0, action], dist.taus[0], num_samples, init="best")
    assert isinstance(z, torch.Tensor)
    return z.double().numpy()


def test_distribution_recovery_long_tail() -> None:
    """``test_learning.test_distribution_recovery_long_tail`` for the expectile agent: same task,
    steps, lr schedule and tolerances (W1 <= 5% of the reward range, Q within 5%)."""
    env = LongTailBandit(seed=1)
    rng = np.random.default_rng(2)
    agent = make_agent(
        "expectile",
        num_actions=2,
        obs_shape=env.obs_shape,
        network=LEARN_MLP,
        seed=3,
        num_expectiles=31,
        lr=1e-3,
    )
    train_on_bandit(agent, env, rng)
    agent.eval()
    with torch.no_grad():
        dist = agent.distribution(agent.online, torch.from_numpy(env.observation()[None]))
    q = dist.q_values()[0].numpy()
    true_q = env.true_q()
    reward_range = float(LONG_TAIL_VALUES.max() - LONG_TAIL_VALUES.min())
    for a in range(2):
        assert abs(q[a] - true_q[a]) <= 0.05 * abs(true_q[a]), (a, q, true_q)
        samples = _decode(dist, a)
        tv, tp = env.return_distribution(a)
        w1 = wasserstein1(samples, np.full(samples.shape[0], 1 / samples.shape[0]), tv, tp)
        assert w1 <= 0.05 * reward_range, (a, w1)


def _two_step_run(naive: bool, steps: int = 1500, seed: int = 3) -> ExpectileAgent:
    """State ``s0`` (reward 0, discount 0.9) leads to the long-tail bandit state ``s1``; the
    distribution at ``s0`` is learned only through imputed bootstrap targets. ``naive`` regresses
    on the bootstrap expectiles themselves (the collapsing "naive" EDRL of Rowland et al. 2019)."""
    agent = make_agent(
        "expectile",
        num_actions=2,
        obs_shape=(4,),
        network=LEARN_MLP,
        seed=seed,
        num_expectiles=15,
        imputation_iters=8,
        lr=1e-3,
    )
    assert isinstance(agent, ExpectileAgent)
    if naive:

        def naive_impute(expectiles_BK: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return expectiles_BK.float(), torch.zeros(expectiles_BK.shape[0])

        agent.impute = naive_impute  # type: ignore[method-assign]
    rng = np.random.default_rng(seed)
    s0, s1 = np.eye(4, dtype=np.float32)[:2]
    size = 64
    for step in range(steps):
        if step == int(0.6 * steps):
            for opt in agent.optimizers:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
        first = rng.random(size) < 0.5
        action = rng.integers(0, 2, size)
        tail = rng.choice(LONG_TAIL_VALUES, size=size, p=LONG_TAIL_PROBS)
        reward = np.where(first, 0.0, np.where(action == 0, tail, 1.0)).astype(np.float32)
        agent.learn(
            Batch(
                obs=torch.from_numpy(np.where(first[:, None], s0, s1)),
                action=torch.from_numpy(action),
                reward=torch.from_numpy(reward),
                discount=torch.from_numpy(np.where(first, GAMMA, 0.0).astype(np.float32)),
                next_obs=torch.from_numpy(np.tile(s1, (size, 1))),
                weights=torch.ones(size),
                indices=torch.arange(size),
            )
        )
        if step % 50 == 0:
            agent.sync_target()
    agent.eval()
    return agent


def test_distribution_recovery_through_imputed_bootstrap() -> None:
    """Beyond test_learning: the return distribution one step before the long tail is
    ``0.9 x`` the long tail; imputed targets recover it (W1 within 5% of the range), regressing on
    the expectiles as if they were samples does not."""
    s0 = torch.eye(4)[:1]
    values = GAMMA * LONG_TAIL_VALUES.astype(np.float64)
    limit = 0.05 * float(values.max() - values.min())
    true_q = GAMMA * float((LONG_TAIL_VALUES * LONG_TAIL_PROBS).sum())
    w1 = {}
    for naive in (False, True):
        agent = _two_step_run(naive)
        with torch.no_grad():
            dist = agent.distribution(agent.online, s0)
        samples = _decode(dist, 0)
        w1[naive] = wasserstein1(samples, np.full(100, 0.01), values, LONG_TAIL_PROBS)
        if not naive:
            q = dist.q_values()[0].numpy()
            # 10% (not 5%): the bootstrap carries the SGD noise of the next state's estimate.
            assert np.all(np.abs(q - true_q) <= 0.10 * true_q), (q, true_q)
    assert w1[False] <= limit < w1[True], (w1, limit)  # about 0.43 <= 0.90 < 1.2


def _solves_chain(hparams: dict) -> None:
    env, agent = _chain_run("expectile", hparams, steps=1500)
    assert_chain_solved(env, agent)


def test_control_chain() -> None:
    """``test_learning.test_control_chain`` (same budget); fewer expectiles as QR-DQN uses there."""
    _solves_chain({"num_expectiles": 15, "imputation_iters": 8, "lr": 1e-3})


@pytest.mark.slow
def test_control_chain_preset_sizes() -> None:
    """The chain with the preset's K = 31 levels and 16 imputation iterations (~20 s)."""
    _solves_chain({"num_expectiles": 31, "imputation_iters": 16, "lr": 1e-3})


@pytest.mark.slow
def test_short_atari_run_with_risk_sensitive_acting(tmp_path: Path) -> None:
    """``agent=expectile`` through the training loop on Pong, acting on CVaR_0.25 of the imputed
    distribution (the loop passes ``from_expectiles=True`` because ``expectile_atoms`` is set)."""
    from test_training import SMALL_HPARAMS, scalar_tags, small_config

    from distrl_agents.training.loop import Trainer

    hparams = {"num_expectiles": 7, "imputation_iters": 8, "risk": "cvar", "risk_param": 0.25}
    previous = SMALL_HPARAMS.get("expectile")
    SMALL_HPARAMS["expectile"] = hparams
    try:
        trainer = Trainer(small_config("expectile"), tmp_path)
        summary = trainer.run()
        trainer.close()
    finally:
        if previous is None:
            SMALL_HPARAMS.pop("expectile")
        else:
            SMALL_HPARAMS["expectile"] = previous
    assert summary.finished and summary.num_updates > 0
    assert {"losses/loss", "losses/q_mean", "losses/imputation_residual"} <= set(
        scalar_tags(tmp_path)
    )
