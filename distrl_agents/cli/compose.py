"""The run config that a ``distrl-train`` command line would compose, for the Python API
(:func:`distrl_agents.api.compose_config`); Hydra stays in ``cli/``."""

from __future__ import annotations

from typing import Any, cast

__all__ = ["compose_raw_config"]


def compose_raw_config(overrides: list[str]) -> dict[str, Any]:
    """The config dict of ``distrl-train <overrides>`` (presets and groups resolved), before
    validation. Raises ``ValueError`` with the reason for an override that does not compose
    (an unknown agent or preset, a misspelled field)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from distrl_agents.cli.train import misspelled_key_message

    message = misspelled_key_message(list(overrides))
    if message:
        raise ValueError(message)
    if GlobalHydra.instance().is_initialized():  # e.g. a notebook that initialised Hydra itself
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module("distrl_agents.configs", version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
    except Exception as exc:  # Hydra's own message says what is wrong with the override
        raise ValueError(f"cannot compose the config {list(overrides)}: {exc}") from None
    raw = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    raw.pop("resume", None)
    return raw
