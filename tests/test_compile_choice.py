"""``trainer.compile=auto``: eager and compiled updates timed at start-up, the faster kept."""

from __future__ import annotations

import time

import pytest
import torch

from distrl_agents.training import agent_factory
from distrl_agents.training import compile_choice as choice_mod
from distrl_agents.training import precision as precision_mod
from distrl_agents.training.compile_choice import (
    CompileChoice,
    candidates,
    choose,
    measure_compile,
)
from distrl_agents.training.config import ConfigError

A = 4
OBS = (4, 84, 84)


def test_choose_keeps_eager_unless_a_compiled_mode_clearly_wins() -> None:
    assert choose({"off": 100.0, "update": 70.0}) == "update"
    assert choose({"off": 100.0, "update": 95.0}) == "off"  # within the 10% margin
    assert choose({"off": 100.0, "update": 120.0}) == "off"
    assert choose({"off": 100.0, "update": 80.0, "graphs": 40.0}) == "graphs"
    assert choose({"off": 100.0}) == "off"  # every compiled mode dropped
    assert choose({"off": 100.0, "update": 95.0}, margin=0.0) == "update"


def test_candidates_per_device() -> None:
    assert candidates(torch.device("cpu")) == ("off", "update")
    assert candidates(torch.device("cuda")) == ("off", "update", "graphs")


class FakeAgent:
    """An agent whose update sleeps ``ms``; ``fails`` raises in learn, ``fallback`` reports
    that compilation fell back to eager."""

    def __init__(self, mode: str, ms: float, fails: bool = False, fallback: bool = False):
        self.mode, self.ms, self.fails = mode, ms, fails
        self.update_compiled = mode != "off" and not fallback
        self.calls = 0

    def learn(self, batch) -> None:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fails:
            raise RuntimeError("inductor: no C compiler")
        time.sleep(self.ms / 1e3)


def _measure(agents: dict[str, FakeAgent], modes: tuple[str, ...]) -> CompileChoice:
    return measure_compile(
        lambda mode: agents[mode], obs_shape=OBS, obs_dtype=torch.uint8, num_actions=A,
        batch_size=4, device=torch.device("cpu"), modes=modes, rounds=3, budget_s=0.1,
    )  # fmt: skip


def test_measure_compile_times_eager_and_compiled_and_keeps_the_faster() -> None:
    agents = {"off": FakeAgent("off", 30.0), "update": FakeAgent("update", 5.0)}
    choice = _measure(agents, ("off", "update"))
    assert choice.mode == "update" and set(choice.update_ms) == {"off", "update"}
    assert choice.update_ms["update"] < choice.update_ms["off"]
    assert "update" in choice.compile_s and "off" not in choice.compile_s
    # Warm-up updates first (they compile), then one untimed call and the timed rounds.
    assert agents["update"].calls >= choice_mod.WARMUP_UPDATES + 1 + 3
    assert "compile=auto (measured): update" in choice.describe()

    slow = {"off": FakeAgent("off", 5.0), "update": FakeAgent("update", 30.0)}
    assert _measure(slow, ("off", "update")).mode == "off"


def test_a_mode_that_fails_to_compile_is_dropped_with_its_reason() -> None:
    agents = {
        "off": FakeAgent("off", 20.0),
        "update": FakeAgent("update", 1.0, fallback=True),  # torch.compile fell back to eager
        "graphs": FakeAgent("graphs", 1.0, fails=True),  # raised inside compiled code
    }
    choice = _measure(agents, ("off", "update", "graphs"))
    assert choice.mode == "off" and set(choice.update_ms) == {"off"}
    assert "compilation failed" in choice.dropped["update"]
    assert "no C compiler" in choice.dropped["graphs"]
    assert "graphs dropped" in choice.describe()


def test_config_accepts_auto_and_names_it_in_the_error() -> None:
    from test_training import small_config

    assert small_config("c51", compile="auto").trainer.compile == "auto"
    with pytest.raises(ConfigError, match="off, torso, update, graphs or auto"):
        small_config("c51", compile="fast")


def test_auto_compile_builds_the_agent_in_the_measured_mode(monkeypatch: pytest.MonkeyPatch):
    from test_training import small_config

    calls: list[dict] = []
    made: list[str] = []

    def fake_measure(make, **kw):  # type: ignore[no-untyped-def]
        calls.append(kw)
        made.append(make("off").config.compile)  # the throw-away agents: the run's precisions
        return CompileChoice("update", {"off": 2.0, "update": 1.0})

    monkeypatch.setattr(agent_factory, "measure_compile", fake_measure)
    monkeypatch.setattr(precision_mod, "_CACHE", {})
    cfg = small_config("qrdqn", compile="auto", precision="fp32", device="cpu")
    for _ in range(2):  # measured once per process and configuration
        agent = agent_factory.build_agent(cfg, num_actions=A, obs_shape=OBS, device="cpu")
        assert agent.config.compile == "update" and agent.hparams["compile"] == "update"
    assert len(calls) == 1 and calls[0]["batch_size"] == cfg.trainer.batch_size
    assert made == ["off"]
    # An explicit mode is not measured.
    cfg = small_config("qrdqn", compile="off", precision="fp32", device="cpu")
    agent = agent_factory.build_agent(cfg, num_actions=A, obs_shape=OBS, device="cpu")
    assert agent.config.compile == "off" and len(calls) == 1


@pytest.mark.slow
def test_auto_compile_measures_real_compiled_updates() -> None:
    """The real thing on this machine: both modes timed (the compiled agent really ran
    compiled) and the faster chosen; where compilation cannot work, eager with the reason."""
    from test_training import small_config

    cfg = small_config("qrdqn", compile="auto", precision="fp32", device="cpu")
    hparams = agent_factory.agent_hparams(cfg)
    make = agent_factory._agent_maker(cfg, hparams, num_actions=A, obs_shape=OBS, device="cpu")
    choice = measure_compile(
        lambda mode: make("fp32", "fp32", mode), obs_shape=OBS, obs_dtype=torch.uint8,
        num_actions=A, batch_size=cfg.trainer.batch_size, device=torch.device("cpu"),
    )  # fmt: skip
    if choice.dropped:  # a platform where torch.compile cannot build (no C compiler): eager
        assert set(choice.dropped) == {"update"} and choice.mode == "off"
        assert set(choice.update_ms) == {"off"}
    else:
        assert set(choice.update_ms) == {"off", "update"} and choice.compile_s["update"] > 0
        assert choice.mode == choose(choice.update_ms)
