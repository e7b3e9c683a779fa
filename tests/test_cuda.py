"""GPU checks: skipped where PyTorch sees no CUDA device (run them with scripts/gpu_check.sh).

``DISTRL_TEST_DEVICE=cpu`` runs the same tests on the CPU (CI does, in its slow stage): that
checks the tests themselves, so that a machine lent for a few minutes does not find them broken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from distrl_agents.agents import AGENT_NAMES, make_agent
from distrl_agents.replay import ReplayBuffer

DEVICE = os.environ.get("DISTRL_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
)


def _filled(storage_device: str, device: str) -> ReplayBuffer:
    buf = ReplayBuffer(
        2000, num_envs=2, n_step=3, prioritized=True, device=device,
        storage_device=storage_device, seed=0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for t in range(300):
        obs = rng.integers(0, 255, (2, 4, 84, 84), dtype=np.uint8)
        buf.add(obs, [t % 3, 1], [1.0, -1.0], [t % 50 == 49, False], [False, t % 70 == 69])
    return buf


def test_gpu_resident_replay_samples_what_host_replay_samples() -> None:
    host, gpu = _filled("cpu", DEVICE), _filled(DEVICE, DEVICE)
    for _ in range(3):
        a, b = host.sample(32), gpu.sample(32)
        assert a.obs.device.type == DEVICE and b.obs.device.type == DEVICE
        for name in ("obs", "next_obs", "action", "reward", "discount", "weights", "indices"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name))
        priorities = torch.rand(32)  # the same new priorities, as a CUDA and as a host tensor
        host.update_priorities(a.indices, priorities.to(DEVICE))
        gpu.update_priorities(b.indices, priorities)


@pytest.mark.parametrize("name", AGENT_NAMES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_agent_learns_and_acts_on_cuda(name: str, precision: str) -> None:
    agent = make_agent(
        name, num_actions=6, obs_shape=(4, 84, 84), device=DEVICE, precision=precision,
        channels_last=precision == "bf16",
    )  # fmt: skip
    buf = _filled("cpu", DEVICE)
    for _ in range(3):
        batch = buf.sample(32)
        result = agent.learn(batch)
        assert result.loss.device.type == DEVICE and torch.isfinite(result.loss).all()
    obs = np.zeros((3, 4, 84, 84), dtype=np.uint8)
    assert agent.act(obs, 0.0).shape == (3,)


def test_training_run_on_cuda_with_device_replay(tmp_path: Path) -> None:
    from test_training import small_config

    from distrl_agents.training.loop import Trainer

    cfg = small_config("iqn", total_steps=200, eval_period=100, device=DEVICE)
    cfg.replay.storage = "device"
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.run()
    trainer.close()
    assert summary.finished and trainer.replay.storage_device.type == DEVICE
    if DEVICE == "cuda":
        assert trainer.agent.config.precision == "bf16"  # precision=auto on CUDA


@pytest.mark.parametrize("name", ["c51", "iqn"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graphs_update_matches_eager(name: str, precision: str) -> None:
    """compile=graphs (torch.compile + CUDA graphs) takes the same steps as the eager update."""
    buf = _filled(DEVICE, DEVICE)
    batches = [buf.sample(32) for _ in range(4)]
    results = {}
    for mode in ("off", "graphs"):
        agent = make_agent(
            name, num_actions=6, obs_shape=(4, 84, 84), device=DEVICE, precision=precision,
            compile=mode, seed=1,
        )  # fmt: skip
        losses = [agent.learn(b).loss for b in batches]  # earlier losses must survive replays
        results[mode] = torch.stack(losses)
    tol: dict[str, Any] = (
        {"rtol": 1e-3, "atol": 1e-4} if precision == "fp32" else {"rtol": 5e-2, "atol": 5e-3}
    )
    torch.testing.assert_close(results["graphs"], results["off"], **tol)


def test_training_run_on_cuda_with_cuda_graphs(tmp_path: Path) -> None:
    from test_training import small_config

    from distrl_agents.training.loop import Trainer

    cfg = small_config("qrdqn", total_steps=300, eval_period=0, device=DEVICE, compile="graphs")
    cfg.replay.prioritized = True
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.run()
    trainer.close()
    assert summary.finished and summary.num_updates > 0
