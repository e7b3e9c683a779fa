"""distrl-agents: distributional deep reinforcement learning on Atari.

C51, QR-DQN, IQN, FQF (and the expected-value DQN baseline) share one replay buffer, one network
zoo and one training loop; an agent is a head, a Bellman target and a loss.
"""

from __future__ import annotations

__version__ = "0.1.0"
