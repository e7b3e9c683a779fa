"""Environments: Atari under the published protocols, the game table, tiny test tasks."""

from __future__ import annotations

from distrl_agents.envs.atari import PROTOCOLS, AtariEnv, EnvSpec, clip_reward, make_atari_env
from distrl_agents.envs.games import (
    ATARI55,
    ATARI57,
    ATARI100K,
    BENCHMARKS,
    HUMAN_RANDOM,
    UnknownGameError,
    available_roms,
    resolve_game,
)

__all__ = [
    "ATARI55",
    "ATARI57",
    "ATARI100K",
    "BENCHMARKS",
    "HUMAN_RANDOM",
    "PROTOCOLS",
    "AtariEnv",
    "EnvSpec",
    "UnknownGameError",
    "available_roms",
    "clip_reward",
    "make_atari_env",
    "resolve_game",
]
