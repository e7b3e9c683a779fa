"""Presets that name a reference implementation take its settings (issue #24's departures)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from distrl_agents.training.config import RunConfig

DOPAMINE_PRESETS = ["dopamine", "dopamine_c51", "dopamine_iqn", "dopamine_quantile"]


def composed(*overrides: str) -> RunConfig:
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return RunConfig.from_dict(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)))


@pytest.mark.parametrize("experiment", [*DOPAMINE_PRESETS, "atari100k_dopamine"])
def test_dopamine_presets_use_dopamines_same_padded_torso(experiment: str) -> None:
    cfg = composed(f"experiment={experiment}")
    assert cfg.network["torso"] == "dopamine" and cfg.network["hidden"] == 512


@pytest.mark.parametrize("experiment", ["nature_paper", "c51_paper", "dqn_paper", "atari100k"])
def test_paper_presets_keep_the_nature_papers_valid_torso(experiment: str) -> None:
    assert composed(f"experiment={experiment}").network["torso"] in ("nature", "der")


def test_dqn_paper_sums_the_minibatch_loss_as_the_lua_code() -> None:
    assert composed("experiment=dqn_paper").agent["loss_reduction"] == "sum"
    for experiment in ("nature_paper", "c51_paper", "dopamine"):
        assert composed(f"experiment={experiment}").agent["loss_reduction"] == "mean"


@pytest.mark.parametrize(
    ("experiment", "last_game"),
    [("nature_paper", "drop"), ("dqn_paper", "drop"), ("iqn_paper", "drop")]
    + [(e, "finish") for e in DOPAMINE_PRESETS],
)
def test_reference_evaluations_score_every_game_of_the_step_budget(
    experiment: str, last_game: str
) -> None:
    # The Lua code (run_gpu eval_steps = 125000) scores the games that end within the budget;
    # Dopamine (Runner._run_one_phase) plays until the budget is reached and finishes the last.
    t = composed(f"experiment={experiment}").trainer
    assert (t.eval_period, t.eval_steps, t.eval_episodes) == (250_000, 125_000, 0)
    assert t.eval_last_game == last_game


def test_the_bare_trainer_evaluation_is_unchanged() -> None:
    t = composed("~experiment").trainer  # configs/trainer/default.yaml, no preset
    assert (t.eval_steps, t.eval_episodes, t.eval_last_game) == (125_000, 10, "drop")
