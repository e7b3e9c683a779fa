"""The training loop, its configuration, checkpoints and device helpers."""

from __future__ import annotations

from distrl_agents.training.config import (
    ConfigError,
    EnvConfig,
    LoggerConfig,
    ReplayConfig,
    RunConfig,
    TrainerConfig,
)

__all__ = [
    "ConfigError",
    "EnvConfig",
    "LoggerConfig",
    "ReplayConfig",
    "RunConfig",
    "TrainerConfig",
]
