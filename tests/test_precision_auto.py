"""Precision per part (update, acting), its start-up measurement, and the CPU thread rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distrl_agents.agents import make_agent
from distrl_agents.training import agent_factory
from distrl_agents.training import device as device_mod
from distrl_agents.training import loop as loop_mod
from distrl_agents.training import precision as precision_mod
from distrl_agents.training.device import resolve_precision, resolve_torch_threads
from distrl_agents.training.precision import PrecisionChoice, faster, measure_precision
from distrl_agents.types import Batch

A = 4


def _agent(name: str, **kw):  # type: ignore[no-untyped-def]
    network = {"torso": "nature", "hidden": 16}
    return make_agent(name, num_actions=A, obs_shape=(4, 84, 84), network=network, **kw)


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8)


def _batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (6, 4, 84, 84), generator=g, dtype=torch.uint8)
    return Batch(
        obs=obs,
        action=torch.randint(0, A, (6,), generator=g),
        reward=torch.randn(6, generator=g),
        discount=torch.full((6,), 0.99),
        next_obs=obs.flip(0),
        weights=torch.ones(6),
        indices=torch.arange(6),
    )


@pytest.mark.parametrize("name", ["c51", "iqn"])
def test_acting_precision_is_independent_of_the_update_precision(name: str) -> None:
    """bf16 updates with fp32 acting act exactly as an fp32 agent with the same weights, and fp32
    updates with bf16 acting exactly as a bf16 agent (both read the online weights)."""
    obs = _frames(6)
    for update, act in (("bf16", "fp32"), ("fp32", "bf16")):
        agent = _agent(name, precision=update, act_precision=act)
        agent.learn(_batch())
        assert agent.hparams["precision"] == update and agent.hparams["act_precision"] == act
        assert (agent.acting_network() is agent.online) == (act == "fp32")
        reference = _agent(name, precision=act, seed=7)
        reference.load_state_dict(agent.state_dict())  # weights and the tau generator's state
        got, want = agent.act(obs, 0.0), reference.act(obs, 0.0)
        assert np.array_equal(got, want)
        assert agent._autocast_on == (update == "bf16")  # acting left the update's autocast


def test_act_precision_defaults_to_precision_and_is_validated() -> None:
    assert _agent("c51", precision="bf16").config.act_precision == "bf16"
    assert _agent("c51").config.act_precision == "fp32"
    with pytest.raises(ValueError, match="act_precision"):
        _agent("c51", act_precision="fp16")


def test_weights_changed_refreshes_the_bf16_acting_copy() -> None:
    agent = _agent("c51", act_precision="bf16")
    acting = agent.acting_network()
    with torch.no_grad():
        # An in-place change no version counter sees (as the fused optimiser's step).
        next(agent.online.parameters()).data.mul_(2.0)
    agent.weights_changed()
    acting = agent.acting_network()
    for src, dst in zip(agent.online.parameters(), acting.parameters()):
        assert torch.equal(src.to(dst.dtype), dst)


def test_faster_keeps_fp32_unless_bf16_clearly_wins() -> None:
    assert faster({"fp32": 10.0, "bf16": 5.0}) == "bf16"
    assert faster({"fp32": 10.0, "bf16": 9.8}) == "fp32"  # within the 5% margin
    assert faster({"fp32": 1.3, "bf16": 2.4}) == "fp32"


def test_measure_precision_times_both_parts_in_both_precisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_mod, "cpu_has_bf16_kernels", lambda: True)
    built: list[tuple[str, str]] = []

    def make(update: str, act: str):  # type: ignore[no-untyped-def]
        built.append((update, act))
        return _agent("c51", precision=update, act_precision=act)

    choice = measure_precision(
        make, obs_shape=(4, 84, 84), obs_dtype=torch.uint8, num_actions=A, batch_size=4,
        num_envs=1, update_period=4, device=torch.device("cpu"), rounds=3, budget_s=0.0,
    )  # fmt: skip
    assert set(choice.update_ms) == set(choice.act_ms) == {"fp32", "bf16"}
    assert all(v > 0 for v in [*choice.update_ms.values(), *choice.act_ms.values()])
    assert choice.update == faster(choice.update_ms) and choice.act == faster(choice.act_ms)
    # Update candidates, then acting candidates in the chosen update precision.
    assert built == [("fp32", "fp32"), ("bf16", "bf16"), (choice.update, "fp32"),
                     (choice.update, "bf16")]  # fmt: skip
    assert "update" in choice.describe() and "acting" in choice.describe()


def test_a_cpu_without_bf16_kernels_keeps_fp32_untimed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_mod, "cpu_has_bf16_kernels", lambda: False)

    def make(update: str, act: str):  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is built or timed")

    choice = measure_precision(
        make, obs_shape=(4, 84, 84), obs_dtype=torch.uint8, num_actions=A, batch_size=4,
        num_envs=1, update_period=4, device=torch.device("cpu"),
    )  # fmt: skip
    assert (choice.update, choice.act) == ("fp32", "fp32")
    assert choice.update_ms == choice.act_ms == {}
    assert "no bf16 kernels" in choice.describe() and "fp32" in choice.describe()


def test_cpu_bf16_kernel_check_answers_a_bool() -> None:
    assert isinstance(precision_mod.cpu_has_bf16_kernels(), bool)


def test_auto_precision_on_cpu_uses_the_measured_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_training import small_config

    measured = PrecisionChoice("bf16", "fp32", {"fp32": 2.0, "bf16": 1.0}, {"fp32": 1, "bf16": 2})
    calls: list[dict] = []

    def fake_measure(make, **kw):  # type: ignore[no-untyped-def]
        calls.append(kw)
        return measured

    monkeypatch.setattr(agent_factory, "measure_precision", fake_measure)
    monkeypatch.setattr(precision_mod, "_CACHE", {})
    assert resolve_precision("auto", torch.device("cpu")) == "auto"
    cfg = small_config("c51", precision="auto", device="cpu")
    for _ in range(2):  # measured once per process and configuration
        agent = agent_factory.build_agent(cfg, num_actions=A, obs_shape=(4, 84, 84), device="cpu")
        assert (agent.config.precision, agent.config.act_precision) == ("bf16", "fp32")
        assert agent.config.channels_last  # channels-last follows the update's precision (auto)
    assert len(calls) == 1 and calls[0]["batch_size"] == cfg.trainer.batch_size
    assert calls[0]["num_envs"] == cfg.env.num_envs

    # An explicit precision is not measured and sets both parts.
    cfg = small_config("c51", precision="fp32", device="cpu")
    agent = agent_factory.build_agent(cfg, num_actions=A, obs_shape=(4, 84, 84), device="cpu")
    assert (agent.config.precision, agent.config.act_precision) == ("fp32", "fp32") and len(
        calls
    ) == 1


def test_torch_threads_default_to_torchs_next_to_the_game_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(device_mod, "available_cpus", lambda: 2)
    assert resolve_torch_threads(3, cpu, env_threads=1, overlap=True) == 3  # explicit wins
    assert resolve_torch_threads(0, cpu, env_threads=1, overlap=True) == 0  # torch's default
    assert resolve_torch_threads(0, cpu, env_threads=2, overlap=True) == 0
    assert resolve_torch_threads(0, cpu, env_threads=1, overlap=False) == 0
    assert resolve_torch_threads(0, cuda, env_threads=1, overlap=True) == 0


def test_trainer_restores_torch_threads_on_close(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_training import small_config

    before = torch.get_num_threads()
    cfg = small_config("c51", precision="fp32", torch_threads=1, total_steps=10)
    trainer = loop_mod.Trainer(cfg, tmp_path)
    assert torch.get_num_threads() == 1
    trainer.close()
    assert torch.get_num_threads() == before


def test_a_resumed_run_keeps_the_auto_choices_made_on_this_machine(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """precision=auto and compile=auto are measured when a run starts; its checkpoints record
    the choices with the machine they were made on, and a resume there keeps them (a timing
    on a busy machine could otherwise switch the run's precision halfway). Elsewhere (another
    device model or torch version) the resume measures again."""
    from test_training import small_config, train

    from distrl_agents.training import checkpoint as ckpt
    from distrl_agents.training.compile_choice import CompileChoice

    measured: list[str] = []

    def fake_precision(make, **kw):  # type: ignore[no-untyped-def]
        measured.append("precision")
        return PrecisionChoice("bf16", "fp32", {"fp32": 2.0, "bf16": 1.0}, {"fp32": 1, "bf16": 2})

    def fake_compile(make, **kw):  # type: ignore[no-untyped-def]
        measured.append("compile")
        return CompileChoice("off", {"off": 1.0, "update": 1.0})

    monkeypatch.setattr(agent_factory, "measure_precision", fake_precision)
    monkeypatch.setattr(agent_factory, "measure_compile", fake_compile)
    monkeypatch.setattr(precision_mod, "_CACHE", {})
    cfg = small_config("c51", precision="auto", compile="auto", device="cpu", total_steps=120)
    trainer, _ = train(cfg, tmp_path)
    assert measured == ["precision", "compile"]
    state = ckpt.load_state(ckpt.latest_checkpoint(tmp_path))
    recorded = state["auto_choices"]
    assert recorded["machine"] == agent_factory.machine_key(torch.device("cpu"))
    assert (recorded["precision"], recorded["act_precision"], recorded["compile"]) == (
        "bf16",
        "fp32",
        "off",
    )

    # Resume on this machine with an empty measurement cache (a new process): not measured.
    monkeypatch.setattr(precision_mod, "_CACHE", {})
    cfg = small_config("c51", precision="auto", compile="auto", device="cpu", total_steps=240)
    trainer, summary = train(cfg, tmp_path)
    assert measured == ["precision", "compile"] and summary.agent_step == 240
    assert (trainer.agent.config.precision, trainer.agent.config.act_precision) == ("bf16", "fp32")

    # The same checkpoint on another machine: measured again.
    other = dict(recorded, machine={"device": "cpu: another model", "torch": torch.__version__})
    for _ in range(2):
        monkeypatch.setattr(precision_mod, "_CACHE", {})
        agent_factory.build_agent(
            cfg, num_actions=A, obs_shape=(4, 84, 84), device="cpu", previous=other
        )
        other = dict(recorded, machine={**recorded["machine"], "torch": "0.0"})
    assert measured == ["precision", "compile"] * 3
