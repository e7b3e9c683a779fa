"""distrl-agents: distributional deep reinforcement learning on Atari.

C51, QR-DQN, IQN, FQF (and the expected-value DQN baseline) share one replay buffer, one network
zoo and one training loop; an agent is a head, a Bellman target and a loss.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The Python API (distrl_agents.api, docs/python_api.md), imported on first use so that
#: ``import distrl_agents`` stays light.
_API = ("LoadedAgent", "TrainResult", "compose_config", "load_agent", "load_config", "train")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from distrl_agents import api

        return getattr(api, name)
    raise AttributeError(f"module 'distrl_agents' has no attribute {name!r}")
