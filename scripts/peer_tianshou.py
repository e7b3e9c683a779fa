"""Steady training rate of one Tianshou 2.x DQN-family agent on an Atari game (one env, CPU).

Run by ``scripts/bench_peers.py`` with the Python of Tianshou's own virtual environment; it
imports only Tianshou, torch, gymnasium and ale-py (not distrl_agents). Prints one JSON line.

    python peer_tianshou.py --agent c51 [--game Breakout] [--warmup 1000] [--skip 200]
                            [--steps 1000] [--buffer 10000] [--nan-scan on|off]

The agent is built from Tianshou's own parts the way its Atari examples build it (its Nature
``DQNet`` torso and heads, ``wrap_deepmind`` preprocessing on ``<Game>NoFrameskip-v4``, a
``VectorReplayBuffer`` storing single frames, its ``Collector`` and ``OffPolicyTrainer``), with
the hyperparameters set to the paper presets of distrl-agents (atoms, quantile counts, optimiser,
learning rate, epsilon), one update per 4 agent steps and batch 32.

The warm-up collects ``--warmup`` random transitions (``Collector.collect(random=True)``), then
the trainer runs ``--skip + --steps`` agent steps; the rate is measured over the last ``--steps``
from the trainer's own per-collect callback (``training_fn``), so start-up is not counted.

``--nan-scan off`` replaces the replay buffer's ``hasnull`` with one that returns False: as
shipped, ``OffPolicyTrainer`` checks the whole buffer for NaNs after every collect step (every 4
agent steps here), a cost that grows with the buffer.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np
import torch

AGENTS = ("dqn", "c51", "qrdqn", "iqn", "fqf")


def epsilon(step: int, warmup: int) -> float:
    """distrl-agents' default schedule: 1.0 -> 0.01 over 1M agent steps after the warm-up."""
    return 1.0 - 0.99 * min(1.0, max(0, step - warmup) / 1_000_000)


def build(agent: str, env: gym.Env, seed: int):
    from tianshou.algorithm.optim import AdamOptimizerFactory, RMSpropOptimizerFactory
    from tianshou.env.atari.atari_network import C51Net, DQNet, QRDQNet

    obs_shape = env.observation_space.shape
    assert obs_shape is not None and isinstance(env.action_space, gym.spaces.Discrete)
    c, h, w = obs_shape
    n = int(env.action_space.n)
    torch.manual_seed(seed)
    # distrl-agents' paper presets (configs/agent/*.yaml): target sync every 10,000 agent steps
    # = 2,500 updates at one update per 4 steps.
    target_freq = 2_500
    if agent == "dqn":
        from tianshou.algorithm import DQN
        from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy

        policy = DiscreteQLearningPolicy(
            model=DQNet(c, h, w, action_shape=n), action_space=env.action_space
        )
        optim = RMSpropOptimizerFactory(lr=2.5e-4, alpha=0.95, eps=1e-5, centered=True)
        return DQN(
            policy=policy,
            optim=optim,
            gamma=0.99,
            target_update_freq=target_freq,
            is_double=False,
            huber_loss_delta=1.0,
        )
    if agent == "c51":
        from tianshou.algorithm import C51
        from tianshou.algorithm.modelfree.c51 import C51Policy

        policy = C51Policy(
            model=C51Net(c=c, h=h, w=w, action_shape=[n], num_atoms=51),
            action_space=env.action_space,
            num_atoms=51,
            v_min=-10.0,
            v_max=10.0,
        )
        return C51(
            policy=policy,
            optim=AdamOptimizerFactory(lr=2.5e-4, eps=0.01 / 32),
            gamma=0.99,
            target_update_freq=target_freq,
        )
    if agent == "qrdqn":
        from tianshou.algorithm import QRDQN
        from tianshou.algorithm.modelfree.qrdqn import QRDQNPolicy

        policy = QRDQNPolicy(
            model=QRDQNet(c=c, h=h, w=w, action_shape=n, num_quantiles=200),
            action_space=env.action_space,
        )
        return QRDQN(
            policy=policy,
            optim=AdamOptimizerFactory(lr=5e-5, eps=0.01 / 32),
            gamma=0.99,
            num_quantiles=200,
            target_update_freq=target_freq,
        )
    from tianshou.utils.net.discrete import (
        FractionProposalNetwork,
        FullQuantileFunction,
        ImplicitQuantileNetwork,
    )

    features = DQNet(c, h, w, action_shape=n, features_only=True)
    if agent == "iqn":
        from tianshou.algorithm import IQN
        from tianshou.algorithm.modelfree.iqn import IQNPolicy

        net = ImplicitQuantileNetwork(
            preprocess_net=features, action_shape=n, hidden_sizes=[512], num_cosines=64
        )
        # Dabney et al. 2018b as distrl-agents' preset: K = 32 (acting), N = N' = 64.
        policy = IQNPolicy(
            model=net,
            action_space=env.action_space,
            sample_size=32,
            online_sample_size=64,
            target_sample_size=64,
        )
        return IQN(
            policy=policy,
            optim=AdamOptimizerFactory(lr=5e-5, eps=0.01 / 32),
            gamma=0.99,
            target_update_freq=target_freq,
        )
    if agent == "fqf":
        from tianshou.algorithm import FQF
        from tianshou.algorithm.modelfree.fqf import FQFPolicy

        net = FullQuantileFunction(
            preprocess_net=features, action_shape=n, hidden_sizes=[512], num_cosines=64
        )
        fraction_net = FractionProposalNetwork(32, net.input_dim)
        policy = FQFPolicy(model=net, fraction_model=fraction_net, action_space=env.action_space)
        return FQF(
            policy=policy,
            optim=AdamOptimizerFactory(lr=5e-5, eps=0.01 / 32),
            fraction_optim=RMSpropOptimizerFactory(lr=2.5e-9, alpha=0.95, eps=1e-5),
            gamma=0.99,
            num_fractions=32,
            ent_coef=0.0,
            target_update_freq=target_freq,
        )
    raise SystemExit(f"unknown agent {agent!r}; choose from {AGENTS}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", required=True, choices=AGENTS)
    p.add_argument("--game", default="Breakout")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--skip", type=int, default=200)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--buffer", type=int, default=10_000)
    p.add_argument("--nan-scan", choices=["on", "off"], default="on")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import tianshou
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.env.atari.atari_wrapper import wrap_deepmind
    from tianshou.trainer import OffPolicyTrainerParams

    def make_env() -> gym.Env:
        import ale_py

        gym.register_envs(ale_py)
        # Tianshou's Atari training envs: NoFrameskip-v4 under wrap_deepmind (30 no-op starts,
        # max-pooled frame skip 4, life loss ends the training episode, FIRE on reset, 84x84
        # grey, clipped rewards, 4 stacked frames).
        return wrap_deepmind(gym.make(f"{args.game}NoFrameskip-v4"), episode_life=True)

    env = make_env()
    # One env stepped in this process (no subprocess round trip per step).
    train_envs = DummyVectorEnv([make_env])
    train_envs.seed(args.seed)
    algorithm = build(args.agent, env, args.seed)
    buffer = VectorReplayBuffer(
        args.buffer, buffer_num=1, ignore_obs_next=True, save_only_last_obs=True, stack_num=4
    )
    if args.nan_scan == "off":
        buffer.hasnull = lambda: False  # type: ignore[method-assign]
    collector = Collector[CollectStats](algorithm, train_envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=args.warmup, random=True)

    marks: list[tuple[float, int]] = []
    updates: list[tuple[float, float]] = []  # (start, seconds) of each gradient update
    update = algorithm.update

    def timed_update(*a, **k):  # the trainer's call: replay sample + gradient step
        t0 = time.perf_counter()
        out = update(*a, **k)
        updates.append((t0, time.perf_counter() - t0))
        return out

    algorithm.update = timed_update  # type: ignore[method-assign]

    def training_fn(epoch: int, env_step: int) -> None:
        algorithm.policy.set_eps_training(epsilon(args.warmup + env_step, args.warmup))
        marks.append((time.perf_counter(), env_step))

    total = args.skip + args.steps
    algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=collector,
            max_epochs=1,
            epoch_num_steps=total,
            collection_step_num_env_steps=4,
            update_step_num_gradient_steps_per_sample=0.25,
            batch_size=32,
            training_fn=training_fn,
            verbose=False,
            show_progress=False,
        )
    )
    end = time.perf_counter()
    start_t, start_step = next((t, s) for t, s in marks if s >= args.skip)
    rate = (total - start_step) / (end - start_t)
    timed = [d for t0, d in updates if t0 >= start_t]
    print(
        json.dumps(
            {
                "framework": "tianshou",
                "version": tianshou.__version__,
                "agent": args.agent,
                "nan_scan": args.nan_scan,
                "steps_per_s": rate,
                "timed_steps": total - start_step,
                "updates": len(timed),
                "update_ms": 1e3 * sum(timed) / max(len(timed), 1),
                "update_share": sum(timed) / (end - start_t),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "numpy": np.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
