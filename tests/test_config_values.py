"""One conversion of config values by their declared types (``distrl_agents.config_values``),
shared by the agents' hyperparameters and the run's config sections."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import yaml

from distrl_agents.agents.hparams import AgentConfig
from distrl_agents.config_values import ConversionError, convert, convert_fields
from distrl_agents.training.config import ConfigError, RunConfig


@dataclass(frozen=True)
class _TupleAgentConfig(AgentConfig):
    """An agent config with tuple-valued fields, as a YAML preset would set them."""

    taus: tuple[float, ...] = (0.1, 0.5, 0.9)
    pair: tuple[int, str] = (3, "a")
    scale: float | None = None


@dataclass
class _Section:
    sizes: tuple[int, ...] = (32, 64)
    names: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    rate: float = 0.5
    limit: int | None = None
    mode: bool | str = "off"
    kind: Literal["a", "b"] = "a"
    levels: Sequence[float] = (0.5,)


def test_a_tuple_field_round_trips_from_yaml() -> None:
    text = yaml.safe_dump({"taus": [0.1, 0.5, 0.9], "pair": [3, "a"], "lr": 5e-5})
    loaded = yaml.safe_load(text)
    assert isinstance(loaded["taus"], list)  # YAML has no tuples
    config = _TupleAgentConfig(**loaded)
    assert config == _TupleAgentConfig()
    assert config.taus == (0.1, 0.5, 0.9) and isinstance(config.taus, tuple)
    assert config.pair == (3, "a")
    # And back: the dataclass's values dump to the same YAML and load to an equal config.
    dumped = yaml.safe_load(yaml.safe_dump({"taus": list(config.taus), "pair": list(config.pair)}))
    assert _TupleAgentConfig(**dumped) == config


def test_yaml_values_convert_by_declared_type() -> None:
    # PyYAML reads 5e-5 (no dot) as a string, ints where floats are meant; `1` for a tuple of
    # floats becomes 1.0.
    loaded = yaml.safe_load("lr: 5e-5\nrmsprop_initial_ms: 0\ntaus: [1, 0.5]\ndouble_dqn: true\n")
    assert loaded["lr"] == "5e-5"
    config = _TupleAgentConfig(**loaded)
    assert config.lr == 5e-5 and type(config.rmsprop_initial_ms) is float
    assert config.taus == (1.0, 0.5) and type(config.taus[0]) is float
    assert config.double_dqn is True


def test_command_line_strings_convert() -> None:
    values = {"sizes": ["1", "2.0"], "rate": "0.25", "limit": "null", "mode": "torso"}
    assert convert_fields(_Section, values) == {
        "sizes": (1, 2),
        "rate": 0.25,
        "limit": None,
        "mode": "torso",
    }
    assert convert_fields(_Section, {"mode": True, "limit": 4.0}) == {"mode": True, "limit": 4}
    assert convert("true", bool, "x") is True and convert("False", bool, "x") is False
    assert convert_fields(_Section, {"kind": "b", "levels": [1, "0.25"]}) == {
        "kind": "b",
        "levels": (1.0, 0.25),
    }
    with pytest.raises(ConversionError, match=r"kind must be one of \['a', 'b'\], got 'c'"):
        convert_fields(_Section, {"kind": "c"})


@pytest.mark.parametrize(
    ("values", "field_name", "expected"),
    [
        ({"taus": 0.5}, "taus", "a list"),
        ({"taus": [0.1, "x"]}, "taus[1]", "a number"),
        ({"pair": [1, "a", 2]}, "pair", "a list of 2 values"),
        ({"seed": 1.5}, "seed", "an integer"),
        ({"double_dqn": "maybe"}, "double_dqn", "true or false"),
        ({"lr": "fast"}, "lr", "a number"),
        ({"max_grad_norm": "big"}, "max_grad_norm", "a number or null"),
        ({"optimizer": 3}, "optimizer", "a string"),
    ],
)
def test_a_bad_agent_value_is_one_value_error_naming_the_field(
    values: dict[str, Any], field_name: str, expected: str
) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"invalid hparam {field_name!r}: must be {expected}")
    ):
        _TupleAgentConfig(**values)


def _raw(**trainer: Any) -> dict[str, Any]:
    return {"agent": {"name": "c51"}, "trainer": trainer}


def test_a_bad_run_value_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.batch_size must be an integer, got 'many'"):
        RunConfig.from_dict(_raw(batch_size="many"))
    with pytest.raises(ConfigError, match=r"trainer\.reward_clip must be true or false"):
        RunConfig.from_dict(_raw(reward_clip=3))
    with pytest.raises(ConfigError, match=r"env\.overrides must be a mapping"):
        RunConfig.from_dict({**_raw(), "env": {"overrides": [1]}})
    with pytest.raises(ConfigError, match=r"^seed must be an integer"):
        RunConfig.from_dict({**_raw(), "seed": "zero"})
    assert isinstance(ConfigError("x"), ValueError)


def test_run_values_convert_as_before() -> None:
    cfg = RunConfig.from_dict(
        {
            **_raw(gamma=1, total_steps=1e6, channels_last=True, compile=False, batch_size=32.0),
            "replay": {"beta_steps": None},
            "seed": 3,
        }
    )
    t = cfg.trainer
    assert t.gamma == 1.0 and type(t.gamma) is float
    assert t.total_steps == 1_000_000 and type(t.total_steps) is int
    assert t.batch_size == 32 and type(t.batch_size) is int
    assert t.channels_last == "true" and t.compile == "off"
    assert cfg.replay.beta_steps is None and cfg.seed == 3


def test_conversion_error_carries_its_parts() -> None:
    with pytest.raises(ConversionError) as info:
        convert("x", int, "a.b")
    assert (info.value.field, info.value.expected, info.value.value) == ("a.b", "an integer", "x")
    assert str(info.value) == "a.b must be an integer, got 'x'."
