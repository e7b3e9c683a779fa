"""Conformance: every registered agent has what the framework needs.

An agent is declared once, in ``distrl_agents/agents/__init__.py`` (``REGISTRY``); the
parametrised tests, the benchmarks and the recorded behaviour take the agents from there. This
file fails, naming the missing piece and how to add it, when a registered agent lacks one:
its class, config dataclass and test sizes, a head that builds, its YAML preset, its section in
``docs/agents.md``, its recorded behaviour and its own test file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from distrl_agents.agents import (
    AGENT_NAMES,
    REGISTRY,
    RUN_LEVEL_HPARAMS,
    agent_class,
    agent_hparam_names,
    make_agent,
)
from distrl_agents.agents.base import Agent
from distrl_agents.agents.hparams import AgentConfig
from distrl_agents.distribution import ReturnDistribution

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "distrl_agents" / "configs" / "agent"
DOC = ROOT / "docs" / "agents.md"
RECORDED = Path(__file__).parent / "data" / "recorded_behaviour.json"
HOW_TO = "docs/adding_an_agent.md"


def test_every_registered_module_is_present() -> None:
    missing = sorted(set(REGISTRY) - set(AGENT_NAMES))
    assert not missing, f"registered agents whose module is missing: {missing}"


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_class_declares_name_config_and_test_sizes(name: str) -> None:
    cls = agent_class(name)
    assert issubclass(cls, Agent), f"{REGISTRY[name]} is not an Agent subclass"
    assert cls.name == name, f"{REGISTRY[name]}.name is {cls.name!r}, registered as {name!r}"
    assert cls.Config is not AgentConfig and issubclass(cls.Config, AgentConfig), (
        f"{name}: set Config to the agent's own AgentConfig dataclass ({HOW_TO}, 1)"
    )
    assert "test_sizes" in vars(cls), (
        f"{name}: declare test_sizes on the class (small sizes for fast tests; {{}} when the "
        f"preset is small already; {HOW_TO}, 5)"
    )
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(cls.test_sizes) - fields
    assert not unknown, f"{name}.test_sizes names no field of {cls.Config.__name__}: {unknown}"
    cls.Config(**cls.test_sizes)  # the sizes pass the dataclass's own checks


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_head_builds_a_distribution_per_action(name: str) -> None:
    cls = agent_class(name)
    agent = make_agent(
        name,
        num_actions=3,
        obs_shape=(4,),
        network={"torso": "mlp", "mlp_sizes": [8], "hidden": 8},
        **cls.test_sizes,
    )
    with torch.no_grad():
        dist = agent.distribution(agent.online, torch.zeros(2, 4))
    assert isinstance(dist, ReturnDistribution)
    assert dist.values.shape[:2] == (2, 3) and dist.probs.shape == dist.values.shape
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(2, 3))
    assert dist.q_values().shape == (2, 3)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_yaml_preset_exists_with_the_config_fields(name: str) -> None:
    path = PRESETS / f"{name}.yaml"
    assert path.exists(), (
        f"{name}: add the preset {path.relative_to(ROOT)} (name + every non-run-level field "
        f"of its Config, each with its source; {HOW_TO}, 4)"
    )
    preset = yaml.safe_load(path.read_text())
    assert preset.pop("name") == name
    want = set(agent_hparam_names(name)) - {"action_value_fn", *RUN_LEVEL_HPARAMS}
    assert set(preset) == want, (
        f"{path.name}: missing {sorted(want - set(preset))}, not fields {sorted(set(preset) - want)}"
    )


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_docs_have_a_section(name: str) -> None:
    headings = re.findall(r"^## .*$", DOC.read_text(), flags=re.MULTILINE)
    assert any(f"(`{name}`)" in h for h in headings), (
        f"{name}: add a section '## <Name> (`{name}`) — <paper>' to docs/agents.md (head, "
        f"target, loss, preset with sources)"
    )


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_behaviour_is_recorded(name: str) -> None:
    recorded = json.loads(RECORDED.read_text())["agents"]
    missing = [setting for setting, agents in recorded.items() if name not in agents]
    assert not missing, (
        f"{name}: no recorded behaviour under {missing}; record it (the other agents' entries "
        f"stay as they are) with python tests/test_recorded_behaviour.py --record-agent {name}"
    )


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_agent_has_its_own_tests(name: str) -> None:
    """Its own test file, or (the agents that came before this rule) a learning test in
    tests/test_learning.py."""
    from test_learning import BANDIT_HPARAMS

    here = Path(__file__).parent
    own = [here / f"test_{name}.py", here / f"test_{name}_agent.py"]
    assert any(p.exists() for p in own) or name in BANDIT_HPARAMS, (
        f"{name}: add tests/test_{name}.py: its own math against a hand case or a naive "
        f"reference, and a learning test on a task with a known answer ({HOW_TO}, 5)"
    )
