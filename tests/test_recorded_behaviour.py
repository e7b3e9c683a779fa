"""Behaviour recorded before a refactor, reproduced after it.

``tests/data/recorded_behaviour.json`` holds, for every agent at its preset (small sizes), under
three settings (Nature torso fp32; the data-efficient Rainbow network with double Q and
importance weights; bf16 autocast):

* the metrics and per-sample losses of five learning updates on a fixed, seeded batch sequence;
* the actions ``act`` then picks (epsilon-greedy and greedy) and the agent's ``hparams``
  (saved in checkpoints, so checkpoints written before a refactor still load);
* the names and shapes of the checkpointed network tensors;

and the TensorBoard scalars of two short training runs on the real ALE (C51 with the
data-efficient Rainbow settings, FQF with its fraction optimiser).

On the platform that recorded the file (same CPU model, torch and numpy) every float must be
bit-for-bit equal. Elsewhere kernels differ in their last bits, so the update figures are
compared to 1e-4 and the training runs (whose trajectories may fork on a near-tie) are skipped
with the reason. Re-record only when behaviour is meant to change:

    python tests/test_recorded_behaviour.py --record

A new agent (every registered agent must have entries) records only its own update entries,
leaving every other agent's as they were:

    python tests/test_recorded_behaviour.py --record-agent NAME
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from distrl_agents.agents import AGENT_NAMES, agent_class

DATA = Path(__file__).parent / "data" / "recorded_behaviour.json"
#: every registered agent, at its small test sizes (``Agent.test_sizes``).
AGENTS = list(AGENT_NAMES)
SMALL = {name: dict(agent_class(name).test_sizes) for name in AGENTS}
SETTINGS: dict[str, dict[str, Any]] = {
    "nature_fp32": {"network": {"torso": "nature", "hidden": 64}, "hparams": {}},
    "der_double_weighted": {
        "network": {"torso": "der", "hidden": 32, "dueling": True, "noisy": True, "noisy_std": 0.1},
        "hparams": {
            "optimizer": "adam",
            "lr": 1e-3,
            "optimizer_eps": 1.5e-4,
            "double_dqn": True,
            "max_grad_norm": None,
        },
        "weights": True,
    },
    "nature_bf16": {
        "network": {"torso": "nature", "hidden": 64},
        "hparams": {"precision": "bf16", "max_grad_norm": 10.0},
    },
}
BATCH, UPDATES, NUM_ACTIONS, OBS = 8, 5, 6, (4, 84, 84)
#: Scalars that measure time, not behaviour.
TIMING_TAGS = ("charts/SPS", "charts/updates_per_second", "charts/env_ms", "charts/update_ms")


def platform_key() -> dict[str, str]:
    """CPU model and the vector units its kernels dispatch on, torch and numpy versions."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if flags and cpu:
                break
    except OSError:
        pass
    units = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return {
        "cpu": cpu,
        "vector_units": " ".join(units),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _hex(x: Any) -> Any:
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, (list, tuple)):
        return [_hex(v) for v in x]
    if isinstance(x, dict):
        return {k: _hex(v) for k, v in x.items()}
    return x


def _preset(agent: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    import distrl_agents

    path = Path(distrl_agents.__file__).parent / "configs" / "agent" / f"{agent}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(raw, dict)
    raw.pop("name")
    return {**raw, **SMALL.get(agent, {})}


def _batches(weights: bool) -> list[Any]:
    from distrl_agents.types import Batch

    g = torch.Generator().manual_seed(1234)
    out = []
    for _ in range(UPDATES):
        done = torch.rand(BATCH, generator=g) < 0.25
        out.append(
            Batch(
                obs=torch.randint(0, 256, (BATCH, *OBS), generator=g, dtype=torch.uint8),
                action=torch.randint(0, NUM_ACTIONS, (BATCH,), generator=g),
                reward=torch.randn(BATCH, generator=g) * 3,
                discount=torch.where(done, 0.0, 0.99**3).float(),
                next_obs=torch.randint(0, 256, (BATCH, *OBS), generator=g, dtype=torch.uint8),
                weights=(torch.rand(BATCH, generator=g) + 0.5) if weights else torch.ones(BATCH),
                indices=torch.arange(BATCH),
            )
        )
    return out


def record_updates(agent_name: str, setting: str) -> dict[str, Any]:
    from distrl_agents.agents import make_agent

    spec = SETTINGS[setting]
    hparams = {**_preset(agent_name), **spec["hparams"], "seed": 7}
    torch.manual_seed(0)
    agent = make_agent(
        agent_name, num_actions=NUM_ACTIONS, obs_shape=OBS, network=spec["network"], **hparams
    )
    updates = []
    for i, batch in enumerate(_batches(spec.get("weights", False))):
        result = agent.learn(batch)
        updates.append(
            {
                "metrics": dict(zip(result.metric_names, result.metric_values.tolist())),
                "per_sample": result.loss.tolist(),
            }
        )
        if i == 2:
            agent.sync_target()
    obs = torch.randint(
        0, 256, (4, *OBS), generator=torch.Generator().manual_seed(99), dtype=torch.uint8
    )
    explore = agent.act(obs, epsilon=0.5).tolist()
    agent.eval()
    greedy = agent.act(obs).tolist()
    state = agent.state_dict()
    return {
        "updates": updates,
        "actions": {"epsilon_0.5": explore, "greedy": greedy},
        "hparams": json.loads(json.dumps(agent.spec)),
        "tensors": {k: list(v.shape) for k, v in state["online"].items()},
    }


def training_config(agent: str) -> Any:
    from distrl_agents.training.config import RunConfig

    raw: dict[str, Any] = {
        "agent": {"name": agent, **SMALL.get(agent, {})},
        "network": {"torso": "nature", "hidden": 64},
        # FIRE on reset as when these runs were recorded (the nature protocol has since dropped
        # it, as its sources do): the recorded trajectories stay valid.
        "env": {
            "game": "pong",
            "protocol": "nature",
            "num_envs": 2,
            "eval_num_envs": 1,
            "overrides": {"use_fire_reset": True},
        },
        "replay": {"capacity": 1000},
        "trainer": {
            "total_steps": 240,
            "learning_starts": 80,
            "target_update_period": 40,
            "epsilon_decay_steps": 100,
            "eval_period": 200,
            "eval_episodes": 1,
            "eval_steps": 60,
            "checkpoint_period": 0,
            "batch_size": 8,
            "precision": "fp32",
            "torch_threads": 1,
        },
        "logger": {"log_period": 40, "distribution_period": 100, "distribution_states": 1},
        "seed": 3,
    }
    if agent == "c51":  # the data-efficient Rainbow machinery: PER, n-step, noisy, dueling, double
        raw["network"] = {"torso": "der", "hidden": 32, "dueling": True, "noisy": True}
        raw["replay"].update({"prioritized": True, "n_step": 5, "alpha": 0.5, "beta": 0.4})
        raw["agent"].update({"double_dqn": True, "optimizer": "adam", "lr": 1e-4})
        raw["trainer"].update(
            {"update_period": 1, "epsilon_start": 0.0, "epsilon_end": 0.0, "epsilon_decay_steps": 0}
        )
    return RunConfig.from_dict(raw)


def record_training(agent: str) -> dict[str, list[list[Any]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from distrl_agents.training.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        trainer = Trainer(training_config(agent), tmp)
        trainer.run()
        trainer.close()
        acc = EventAccumulator(str(Path(tmp) / "tb"), size_guidance={"scalars": 0})
        acc.Reload()
        return {
            tag: [[e.step, float(e.value)] for e in acc.Scalars(tag)]
            for tag in sorted(acc.Tags()["scalars"])
            if not tag.startswith(TIMING_TAGS)
        }


def record() -> dict[str, Any]:
    return {
        "platform": platform_key(),
        "agents": {
            setting: {a: _hex(record_updates(a, setting)) for a in AGENTS} for setting in SETTINGS
        },
        "training": {a: _hex(record_training(a)) for a in ("c51", "fqf")},
    }


# ------------------------------------------------------------------------------------- tests
def _recorded() -> dict[str, Any]:
    if not DATA.exists():
        pytest.fail(f"{DATA} is missing: run python tests/test_recorded_behaviour.py --record")
    return json.loads(DATA.read_text())


def _floats(x: Any) -> Any:
    """Hex strings back to floats (other strings and ints unchanged)."""
    if isinstance(x, str) and (x.startswith(("0x", "-0x")) or x in ("inf", "-inf", "nan")):
        return float.fromhex(x)
    if isinstance(x, list):
        return [_floats(v) for v in x]
    if isinstance(x, dict):
        return {k: _floats(v) for k, v in x.items()}
    return x


def _compare(got: Any, want: Any, exact: bool, where: str, rel: float = 1e-4) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (where, got, want)
        for k in want:
            _compare(got[k], want[k], exact, f"{where}.{k}", rel)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, exact, f"{where}[{i}]", rel)
    elif isinstance(want, float) and not exact:
        assert got == pytest.approx(want, rel=rel, abs=rel / 100), where
    else:
        assert got == want or (want != want and got != got), (where, got, want)  # NaN == NaN


def _same_platform(recorded: dict[str, Any]) -> bool:
    return recorded["platform"] == platform_key()


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("agent", AGENTS)
def test_updates_actions_and_checkpoint_layout_are_as_recorded(agent: str, setting: str) -> None:
    recorded = _recorded()
    if agent not in recorded["agents"][setting]:
        pytest.fail(
            f"no recorded behaviour for agent {agent!r}: a new agent records its own entries "
            f"(the others' stay as they are) with python tests/test_recorded_behaviour.py "
            f"--record-agent {agent}"
        )
    exact = _same_platform(recorded)
    want = _floats(recorded["agents"][setting][agent])
    got = _floats(_hex(record_updates(agent, setting)))
    if not exact:  # other kernels: actions may differ on near-ties; hparams and layout may not
        _compare(got["hparams"], want["hparams"], True, "hparams")
        _compare(got["tensors"], want["tensors"], True, "tensors")
        # A CPU with bf16 units rounds bf16 products in hardware, one without emulates them:
        # the two differ by bf16's resolution (2^-8 = 0.4% relative), not fp32's last bits.
        rel = 1e-2 if SETTINGS[setting]["hparams"].get("precision") == "bf16" else 1e-4
        _compare(got["updates"], want["updates"], False, "updates", rel)
        return
    _compare(got, want, True, f"{setting}/{agent}")


@pytest.mark.parametrize("agent", ["c51", "fqf"])
def test_short_training_run_writes_the_recorded_scalars(agent: str) -> None:
    recorded = _recorded()
    if not _same_platform(recorded):
        pytest.skip(
            f"recorded on {recorded['platform']}; bit-exact training trajectories are defined only "
            "on the recording platform"
        )
    _compare(
        _floats(_hex(record_training(agent))),
        _floats(recorded["training"][agent]),
        True,
        f"training/{agent}",
    )


def record_agent(agent: str) -> dict[str, Any]:
    """The recorded file with ``agent``'s update entries (re)recorded and every other entry as it
    was. Refused off the recording platform: the file's entries must all come from one."""
    recorded = json.loads(DATA.read_text())
    if not _same_platform(recorded):
        sys.exit(f"the file was recorded on {recorded['platform']}, not here ({platform_key()})")
    for setting in SETTINGS:
        recorded["agents"][setting][agent] = _hex(record_updates(agent, setting))
    return recorded


USAGE = "usage: python tests/test_recorded_behaviour.py --record | --record-agent NAME"

if __name__ == "__main__":
    args = sys.argv[1:]
    torch.set_num_threads(1)
    if args == ["--record"]:
        DATA.parent.mkdir(exist_ok=True)
        DATA.write_text(json.dumps(record(), indent=1) + "\n")
    elif len(args) == 2 and args[0] == "--record-agent" and args[1] in AGENT_NAMES:
        DATA.write_text(json.dumps(record_agent(args[1]), indent=1) + "\n")
    else:
        sys.exit(USAGE)
    print(f"wrote {DATA}")
