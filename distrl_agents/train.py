"""``python -m distrl_agents.train``: the same Hydra app as ``distrl-train``."""

from __future__ import annotations

from distrl_agents.cli.train import train_main

if __name__ == "__main__":
    train_main()
