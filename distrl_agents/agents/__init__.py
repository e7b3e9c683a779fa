"""Agents and their lazy registry.

``make_agent(name, *, num_actions, obs_shape, device="cpu", network=None, **hparams)`` builds an
agent; modules are imported only when their agent is made.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distrl_agents.agents.base import Agent

# name -> "module:Class". Modules load lazily (importing this package does not import torch).
REGISTRY: dict[str, str] = {
    "dqn": "distrl_agents.agents.dqn:DQNAgent",
    "c51": "distrl_agents.agents.c51:C51Agent",
    "qrdqn": "distrl_agents.agents.qrdqn:QRDQNAgent",
    "iqn": "distrl_agents.agents.iqn:IQNAgent",
    "fqf": "distrl_agents.agents.fqf:FQFAgent",
    "expectile": "distrl_agents.agents.expectile:ExpectileAgent",
    "hlgauss": "distrl_agents.agents.hlgauss:HLGaussAgent",
    "mmd": "distrl_agents.agents.mmd:MMDAgent",
}

#: Hyperparameters that belong to the training run, not to an agent preset: the trainer sets
#: them from trainer.precision (both precisions), trainer.compile, trainer.channels_last and the
#: run seed.
RUN_LEVEL_HPARAMS: tuple[str, ...] = (
    "precision",
    "act_precision",
    "compile",
    "channels_last",
    "seed",
)


def _module_exists(path: str) -> bool:
    module = path.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# Names whose module is present in this installation.
AGENT_NAMES: tuple[str, ...] = tuple(n for n, p in REGISTRY.items() if _module_exists(p))


def agent_class(name: str) -> type[Agent]:
    """Import and return the class registered under ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; valid agents: {list(AGENT_NAMES)}")
    module_name, cls_name = REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"agent {name!r} is registered but its module {module_name!r} cannot be imported "
            f"({exc}); valid agents: {list(AGENT_NAMES)}"
        ) from exc
    return getattr(module, cls_name)


def agent_hparam_names(name: str) -> list[str]:
    """The keyword arguments ``make_agent`` accepts for agent ``name``: the fields of its
    hyperparameter dataclass (``Agent.Config``), and ``action_value_fn``."""
    fields = dataclasses.fields(agent_class(name).Config)
    return [f.name for f in fields] + ["action_value_fn"]


def make_agent(
    name: str,
    *,
    num_actions: int,
    obs_shape: Sequence[int],
    device: str = "cpu",
    network: Mapping[str, Any] | None = None,
    **hparams: Any,
) -> Agent:
    """Build agent ``name``; unknown names or hparams raise ``ValueError`` listing valid ones."""
    cls = agent_class(name)
    valid = agent_hparam_names(name)
    for key in hparams:
        if key not in valid:
            raise ValueError(
                f"unknown hparam {key!r} for agent {name!r}; valid hparams: {sorted(valid)}"
            )
    action_value_fn = hparams.pop("action_value_fn", None)
    return cls(
        cls.Config(**hparams),
        num_actions=num_actions,
        obs_shape=tuple(obs_shape),
        device=device,
        network=None if network is None else dict(network),
        action_value_fn=action_value_fn,
    )


__all__ = ["AGENT_NAMES", "REGISTRY", "agent_class", "agent_hparam_names", "make_agent"]
