"""``trainer.compile=auto``: eager and compiled updates timed at start-up, the faster kept."""

from __future__ import annotations

import json
import time

import pytest
import torch

from distrl_agents.training import agent_factory
from distrl_agents.training import compile_choice as choice_mod
from distrl_agents.training.compile_choice import (
    CompileChoice,
    candidates,
    choose,
    measure_compile,
)
from distrl_agents.training.config import ConfigError
from distrl_agents.training.precision import RunPrecision

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
    """An agent whose update busies the CPU for ``ms`` (``measure_compile`` times a CPU device at
    one torch thread on the process's CPU time, which sleeping would not use); ``fails`` raises
    in learn, ``fallback`` reports that compilation fell back to eager."""

    def __init__(self, mode: str, ms: float, fails: bool = False, fallback: bool = False):
        self.mode, self.ms, self.fails = mode, ms, fails
        self.update_compiled = mode != "off" and not fallback
        self.calls = 0

    def learn(self, batch) -> None:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fails:
            raise RuntimeError("inductor: no C compiler")
        end = time.process_time() + self.ms / 1e3
        while time.process_time() < end:
            pass


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


def _settings(cfg, **kw):  # type: ignore[no-untyped-def]
    return agent_factory.resolve_settings(cfg, num_actions=A, obs_shape=OBS, device="cpu", **kw)


def test_auto_compile_is_measured_once_per_machine_and_kept(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The first run on a machine measures and writes the choice to the cache file; every
    later run (another process: a sweep's next job, a relaunch) reads it; DISTRL_REMEASURE=1
    measures again; another machine (here: other torch threads) or configuration measures its
    own. The agent is then built in the chosen mode without measuring."""
    from test_training import small_config

    cache = tmp_path / "choices.json"
    monkeypatch.setenv(choice_mod.CACHE_ENV, str(cache))
    monkeypatch.delenv(choice_mod.REMEASURE_ENV, raising=False)
    calls: list[dict] = []
    made: list[tuple[str, str]] = []
    answer = ["update"]

    def fake_measure(make, **kw):  # type: ignore[no-untyped-def]
        calls.append(kw)
        agent = make("off")  # the throw-away agents: the run's precisions
        made.append((agent.config.precision, agent.config.compile))
        return CompileChoice(answer[0], {"off": 2.0, answer[0]: 1.0})

    monkeypatch.setattr(agent_factory, "measure_compile", fake_measure)
    cfg = small_config("qrdqn", compile="auto", precision="fp32", device="cpu")
    for _ in range(2):
        settings = _settings(cfg)
        assert settings.compile == "update"
    assert len(calls) == 1 and calls[0]["batch_size"] == cfg.trainer.batch_size
    assert made == [("fp32", "off")]
    assert [e["mode"] for e in json.loads(cache.read_text()).values()] == ["update"]
    agent = agent_factory.build_agent(cfg, num_actions=A, obs_shape=OBS, device="cpu",
                                      settings=settings)  # fmt: skip
    assert agent.config.compile == "update" and agent.spec["compile"] == "update"

    answer[0] = "off"
    monkeypatch.setenv(choice_mod.REMEASURE_ENV, "1")
    assert _settings(cfg).compile == "off" and len(calls) == 2
    monkeypatch.delenv(choice_mod.REMEASURE_ENV)
    assert _settings(cfg).compile == "off" and len(calls) == 2  # the new entry replaced it

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads != 1 else 2)
        answer[0] = "update"
        assert _settings(cfg).compile == "update" and len(calls) == 3  # another machine key
    finally:
        torch.set_num_threads(threads)
    assert len(json.loads(cache.read_text())) == 2

    # A resumed run keeps the mode its checkpoint chose on this machine, not elsewhere.
    machine = agent_factory.machine_key(torch.device("cpu"))
    here = {"resolved": {"precision": {"update": "fp32", "target": "fp32", "acting": "fp32"},
                         "compile": "graphs", "machine": machine}}  # fmt: skip
    assert _settings(cfg, recorded=here).compile == "graphs" and len(calls) == 3
    elsewhere = {"resolved": {**here["resolved"], "machine": {**machine, "device": "cpu: other"}}}
    assert _settings(cfg, recorded=elsewhere).compile == "off"  # this machine's cached choice

    # An explicit mode is not measured.
    cfg = small_config("qrdqn", compile="off", precision="fp32", device="cpu")
    assert _settings(cfg).compile == "off" and len(calls) == 3


def test_an_unwritable_cache_measures_once_per_process(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from test_training import small_config

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(choice_mod.CACHE_ENV, str(blocker / "choices.json"))  # under a file
    monkeypatch.setattr(choice_mod, "_MEMORY", {})
    calls: list[int] = []

    def fake_measure(make, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        return CompileChoice("update", {"off": 2.0, "update": 1.0})

    monkeypatch.setattr(agent_factory, "measure_compile", fake_measure)
    cfg = small_config("qrdqn", compile="auto", precision="fp32", device="cpu")
    with pytest.warns(UserWarning, match="cannot keep the choice"):
        assert _settings(cfg).compile == "update"
    assert _settings(cfg).compile == "update" and len(calls) == 1


@pytest.mark.slow
def test_auto_compile_measures_real_compiled_updates() -> None:
    """The real thing on this machine: both modes timed (the compiled agent really ran
    compiled) and the faster chosen; where compilation cannot work, eager with the reason."""
    from test_training import small_config

    cfg = small_config("qrdqn", compile="auto", precision="fp32", device="cpu")
    hparams = agent_factory.agent_hparams(cfg)
    fp32 = RunPrecision("fp32", "fp32", "fp32")

    def make(mode: str):  # type: ignore[no-untyped-def]
        return agent_factory._make(cfg, hparams, fp32, mode, num_actions=A, obs_shape=OBS,
                                   device="cpu")  # fmt: skip

    choice = measure_compile(
        make, obs_shape=OBS, obs_dtype=torch.uint8,
        num_actions=A, batch_size=cfg.trainer.batch_size, device=torch.device("cpu"),
    )  # fmt: skip
    if choice.dropped:  # a platform where torch.compile cannot build (no C compiler): eager
        assert set(choice.dropped) == {"update"} and choice.mode == "off"
        assert set(choice.update_ms) == {"off"}
    else:
        assert set(choice.update_ms) == {"off", "update"} and choice.compile_s["update"] > 0
        assert choice.mode == choose(choice.update_ms)


def test_concurrent_jobs_measure_once_and_agree(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The jobs of a sweep starting together: the first measures under the cache file's lock,
    the others wait for it and read its answer (here: threads with their own file handles)."""
    import threading

    monkeypatch.setenv(choice_mod.CACHE_ENV, str(tmp_path / "choices.json"))
    monkeypatch.delenv(choice_mod.REMEASURE_ENV, raising=False)
    calls: list[int] = []
    answers = iter(["update", "off", "off", "off"])  # a second measurement would disagree

    def measure() -> CompileChoice:
        calls.append(1)
        time.sleep(0.2)  # long enough for the other jobs to reach the lock
        mode = next(answers)
        return CompileChoice(mode, {"off": 1.0, mode: 0.5})

    got: list[str] = []
    jobs = [
        threading.Thread(target=lambda: got.append(choice_mod.cached_mode({"k": 1}, measure)))
        for _ in range(4)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert got == ["update"] * 4 and len(calls) == 1


def test_timings_are_taken_on_the_given_clock() -> None:
    """On a CPU the candidates are timed on the process's CPU time (``measure_compile``), so other
    processes' load does not decide: a fake clock that only the slow candidate advances."""
    from distrl_agents.training.compile_choice import _median_ms

    now = [0.0]

    def slow() -> None:
        now[0] += 0.002

    ms = _median_ms(
        {"off": slow, "update": lambda: None},
        rounds=5, budget_s=10.0, sync=lambda: None, clock=lambda: now[0],
    )  # fmt: skip
    assert ms == pytest.approx({"off": 2.0, "update": 0.0})
