"""Presets that name a reference implementation take its settings (issue #24's departures)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from distrl_agents.training.config import RunConfig

DOPAMINE_PRESETS = ["dopamine", "dopamine_c51", "dopamine_iqn", "dopamine_quantile"]


def composed(*overrides: str) -> RunConfig:
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return RunConfig.from_dict(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("experiment", [*DOPAMINE_PRESETS, "atari100k_dopamine"])
def test_dopamine_presets_use_dopamines_same_padded_torso(experiment: str) -> None:
    cfg = composed(f"experiment={experiment}")
    assert cfg.network["torso"] == "dopamine" and cfg.network["hidden"] == 512


@pytest.mark.parametrize("experiment", ["nature_paper", "c51_paper", "dqn_paper", "atari100k"])
def test_paper_presets_keep_the_nature_papers_valid_torso(experiment: str) -> None:
    assert composed(f"experiment={experiment}").network["torso"] in ("nature", "der")
