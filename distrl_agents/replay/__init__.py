"""Replay memory shared by every agent: uint8 frame ring, n-step returns computed at insert time,
uniform and proportional prioritized sampling, exact save/load. See docs/replay.md."""

from __future__ import annotations

from distrl_agents.replay.buffer import ReplayBuffer
from distrl_agents.replay.serialization import ReplayLoadError
from distrl_agents.replay.sum_tree import SumTree

__all__ = ["ReplayBuffer", "ReplayLoadError", "SumTree"]
