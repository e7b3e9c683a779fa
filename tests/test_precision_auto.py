"""Precision per part (update, target, acting): decided once, outside ``build_agent``, recorded
in config.json, checkpoints and report settings, kept on resume; and the CPU thread rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distrl_agents.agents import make_agent
from distrl_agents.training import agent_factory
from distrl_agents.training import device as device_mod
from distrl_agents.training import loop as loop_mod
from distrl_agents.training import precision as precision_mod
from distrl_agents.training.config import ConfigError
from distrl_agents.training.device import resolve_torch_threads
from distrl_agents.training.precision import (
    RunPrecision,
    decide_precision,
    recorded_precision,
)
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
        assert agent.spec["precision"] == update and agent.spec["act_precision"] == act
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


def test_auto_is_fp32_for_every_part_on_every_device_and_times_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` is a fixed rule (fp32), so every run of a sweep and every launch agree."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for kernels in (True, False):
        monkeypatch.setattr(precision_mod, "cpu_has_bf16_kernels", lambda k=kernels: k)
        for device in ("cpu", "cuda"):
            got = decide_precision("auto", torch.device(device))
            assert got.record() == {"update": "fp32", "target": "fp32", "acting": "fp32"}
    got = decide_precision("bf16", torch.device("cuda"))
    assert got.record() == {"update": "bf16", "target": "bf16", "acting": "bf16"}
    assert got.agent_kwargs() == {"precision": "bf16", "act_precision": "bf16"}
    assert decide_precision("fp32", torch.device("cpu")).update == "fp32"


def test_bf16_on_a_cpu_without_bf16_kernels_warns_and_still_trains_in_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_mod, "cpu_has_bf16_kernels", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        got = decide_precision("bf16", torch.device("cpu"))
    assert got.update == "bf16"  # what the user asked for; the warning says what it costs


def test_cpu_bf16_kernel_check_answers_a_bool() -> None:
    assert isinstance(precision_mod.cpu_has_bf16_kernels(), bool)


def test_a_recorded_precision_is_kept_and_a_contradiction_refused() -> None:
    cpu = torch.device("cpu")
    recorded = {"update": "bf16", "target": "bf16", "acting": "fp32"}
    for setting in ("auto",):  # auto now says fp32: the run keeps what it started with
        assert decide_precision(setting, cpu, recorded).record() == recorded
    with pytest.raises(ConfigError, match="keeps the precision it started with"):
        decide_precision("fp32", cpu, recorded)
    same = {"update": "bf16", "target": "bf16", "acting": "bf16"}
    assert decide_precision("bf16", cpu, same).record() == same


def test_recorded_precision_reads_new_and_old_checkpoints() -> None:
    new = {"resolved": {"precision": {"update": "bf16", "target": "bf16", "acting": "fp32"}}}
    assert recorded_precision(new) == {"update": "bf16", "target": "bf16", "acting": "fp32"}
    # Written before the record existed: ``precision=auto`` measured per part.
    old = {"auto_choices": {"machine": {}, "precision": "bf16", "act_precision": "fp32",
                            "compile": "off"}}  # fmt: skip
    assert recorded_precision(old) == {"update": "bf16", "target": "bf16", "acting": "fp32"}
    assert recorded_precision({}) is None and recorded_precision(None) is None


def test_build_agent_measures_nothing_and_follows_the_resolved_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_training import small_config

    def no_measure(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("building an agent measures nothing")

    monkeypatch.setattr(agent_factory, "measure_compile", no_measure)
    cfg = small_config("c51", precision="auto", device="cpu")
    settings = agent_factory.RunSettings(RunPrecision("bf16", "bf16", "fp32"), "off")
    agent = agent_factory.build_agent(
        cfg, num_actions=A, obs_shape=(4, 84, 84), device="cpu", settings=settings
    )
    assert (agent.config.precision, agent.config.act_precision) == ("bf16", "fp32")
    assert agent.config.channels_last  # channels-last (auto) follows the update's precision
    assert agent.target.torso.net[0].weight.dtype == torch.bfloat16  # the bf16 target copy
    settings = agent_factory.resolve_settings(cfg, num_actions=A, obs_shape=(4, 84, 84),
                                              device="cpu")  # fmt: skip
    assert settings.precision.record() == {"update": "fp32", "target": "fp32", "acting": "fp32"}


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


def test_a_run_records_its_precision_and_a_resume_keeps_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """config.json (``resolved``), the checkpoints (``resolved``) and the report's settings say
    which precision each part trained in; a resumed run keeps it even where ``auto`` would now
    say otherwise, and refuses an explicit setting that contradicts it (nothing written)."""
    import json

    from test_training import small_config, train

    from distrl_agents.evaluation.records import _run_settings
    from distrl_agents.training import checkpoint as ckpt

    cfg = small_config("c51", precision="bf16", device="cpu", total_steps=120)
    train(cfg, tmp_path)
    parts = {"update": "bf16", "target": "bf16", "acting": "bf16"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["resolved"]["precision"] == parts and set(config["resolved"]) == {
        "precision",
        "code",
    }
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None
    state = ckpt.load_state(last)
    assert state["resolved"]["precision"] == parts and state["resolved"]["compile"] == "off"
    assert state["resolved"]["machine"] == precision_mod.machine_key(torch.device("cpu"))
    settings = _run_settings(tmp_path / "config.json")  # what distrl-report reads
    assert {k: v for k, v in settings.items() if k.startswith("resolved.")} == {
        f"resolved.precision.{p}": v for p, v in parts.items()
    }

    # Relaunched with auto (fp32 for a new run): the run keeps bf16.
    cfg = small_config("c51", precision="auto", device="cpu", total_steps=240)
    trainer, summary = train(cfg, tmp_path)
    assert summary.agent_step == 240
    assert (trainer.agent.config.precision, trainer.agent.config.act_precision) == ("bf16", "bf16")
    assert json.loads((tmp_path / "config.json").read_text())["resolved"]["precision"] == parts

    # An explicit contradiction: refused before anything is written.
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    cfg = small_config("c51", precision="fp32", device="cpu", total_steps=360)
    with pytest.raises(ConfigError, match="started with update bf16"):
        loop_mod.Trainer(cfg, tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_report_labels_runs_apart_by_resolved_precision(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two runs with the same ``trainer.precision=auto`` that resolved differently (one started
    when auto meant bf16) are two rows of a report, labelled by the part that differed."""
    import json

    from distrl_agents.evaluation.records import load_runs
    from distrl_agents.evaluation.report import _label_runs

    for seed, update in ((0, "fp32"), (1, "bf16")):
        d = tmp_path / f"pong-c51-seed{seed}"
        d.mkdir()
        config = {"agent": {"name": "c51"}, "seed": seed, "trainer": {"precision": "auto"},
                  "resolved": {"precision": {"update": update, "target": update,
                                             "acting": "fp32"}}}  # fmt: skip
        (d / "config.json").write_text(json.dumps(config))
        record = {"agent": "c51", "game": "pong", "seed": seed, "frames": 400, "agent_step": 100,
                  "mean_return": 1.0, "protocol": "machado"}  # fmt: skip
        (d / "evaluations.jsonl").write_text(json.dumps(record) + "\n")
    labels = sorted(_label_runs(load_runs([tmp_path])).values())
    assert labels == [
        "c51 [resolved.precision.target=bf16,resolved.precision.update=bf16]",
        "c51 [resolved.precision.target=fp32,resolved.precision.update=fp32]",
    ]
