"""The agent a run configuration describes, and whether a checkpoint belongs to that run.

Training (:class:`distrl_agents.training.loop.Trainer`) and evaluation (``distrl-eval``) both
decide the run's precision and compile mode with :func:`resolve_settings` (a checkpoint's record
kept) and build their agent with :func:`build_agent`, which measures nothing, so a checkpoint is
always rebuilt the way it was trained. :func:`check_compatible` refuses a command whose
settings differ from the run its run directory holds (other than the few a resume may change),
before any set-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distrl_agents.agents import RUN_LEVEL_HPARAMS, agent_class, make_agent
from distrl_agents.agents.runtime import COMPILE_MODES
from distrl_agents.training.checkpoint import CheckpointError
from distrl_agents.training.compile_choice import decide_compile, measure_compile
from distrl_agents.training.config import ConfigError, RunConfig
from distrl_agents.training.precision import (
    RunPrecision,
    decide_precision,
    log,
    machine_key,
    recorded_precision,
)
from distrl_agents.training.resume import check_same_run


@dataclass(frozen=True)
class RunSettings:
    """What a run resolved before building its agent: the precision of each part and the
    compile mode (``trainer.precision`` / ``trainer.compile`` with ``auto`` decided)."""

    precision: RunPrecision
    compile: str

    def record(self, device: torch.device) -> dict[str, Any]:
        """What a checkpoint stores (``resolved``): plain strings and dicts."""
        return {
            "precision": self.precision.record(),
            "compile": self.compile,
            "machine": machine_key(torch.device(device)),
        }


def resolve_settings(
    cfg: RunConfig,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    device: Any,
    obs_dtype: torch.dtype = torch.uint8,
    recorded: Mapping[str, Any] | None = None,
) -> RunSettings:
    """The run's :class:`RunSettings`, decided once, before :func:`build_agent`.

    Precision: :func:`distrl_agents.training.precision.decide_precision` (``auto`` is fp32;
    nothing is timed). Compile: ``trainer.compile=auto`` is measured once per machine and
    configuration (:func:`distrl_agents.training.compile_choice.decide_compile`, which times
    throw-away agents). ``recorded`` is the checkpoint state of a resumed run: the run keeps
    the precision it started with, and the compile mode it chose where that was on this machine.
    """
    dev = torch.device(device)
    precision = decide_precision(cfg.trainer.precision, dev, recorded_precision(recorded))
    log(precision.describe())
    if cfg.trainer.compile != "auto":
        return RunSettings(precision, cfg.trainer.compile)
    hparams = agent_hparams(cfg)
    t = cfg.trainer
    key = {
        "machine": machine_key(dev),
        # the agent's settings as configured (hparams may hold a risk measure's function)
        "run": [cfg.agent_name, repr(sorted(cfg.agent.items())), dict(cfg.network), obs_shape,
                str(obs_dtype), num_actions, t.batch_size, precision.record(),
                _channels_last(cfg, precision)],
    }  # fmt: skip

    def measure() -> Any:
        def make(mode: str) -> Any:
            return _make(cfg, hparams, precision, mode, num_actions=num_actions,
                         obs_shape=obs_shape, device=dev)  # fmt: skip

        return measure_compile(make, obs_shape=obs_shape, obs_dtype=obs_dtype,
                               num_actions=num_actions, batch_size=t.batch_size, device=dev)  # fmt: skip

    mode = decide_compile("auto", measure, key=key, recorded=_recorded_compile(recorded, dev))
    return RunSettings(precision, mode)


def _recorded_compile(state: Mapping[str, Any] | None, device: torch.device) -> str | None:
    """The compile mode a checkpoint records, where it was chosen on this machine."""
    if not state:
        return None
    record = state.get("resolved") or {}
    if isinstance(record, Mapping) and record.get("machine") == machine_key(device):
        mode = record.get("compile")
        return str(mode) if mode in COMPILE_MODES else None
    return None


def build_agent(
    cfg: RunConfig,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    device: Any,
    settings: RunSettings,
) -> Any:
    """The configured agent in the resolved ``settings`` (:func:`resolve_settings`); precision,
    compile, channels-last and seed come from the run. Measures nothing."""
    return _make(cfg, agent_hparams(cfg), settings.precision, settings.compile,
                 num_actions=num_actions, obs_shape=obs_shape, device=device)  # fmt: skip


def agent_hparams(cfg: RunConfig) -> dict[str, Any]:
    """The agent preset's keyword arguments, with a risk measure turned into the agent's
    ``action_value_fn``. Settings the run owns (precision, compile, seed, ...) are refused."""
    hparams = cfg.agent_hparams
    owned = sorted(set(hparams) & set(RUN_LEVEL_HPARAMS))
    if owned:
        raise ConfigError(
            f"agent.{owned[0]} is set by the training run, not the agent preset: use "
            + ("seed=..." if owned[0] == "seed" else f"trainer.{owned[0]}=...")
            + " instead."
        )
    risk = hparams.pop("risk", "neutral")
    risk_param = hparams.pop("risk_param", None)
    if risk != "neutral":
        from distrl_agents.risk import make_action_value_fn

        # Expectiles are not atoms of the distribution: risk measures impute samples first.
        from_expectiles = bool(getattr(agent_class(cfg.agent_name), "expectile_atoms", False))
        extra = {}
        if from_expectiles and "imputation_iters" in hparams:
            extra["imputation_iters"] = int(hparams["imputation_iters"])
        hparams["action_value_fn"] = make_action_value_fn(
            risk, risk_param, from_expectiles=from_expectiles, **extra
        )
    return hparams


def _channels_last(cfg: RunConfig, precision: RunPrecision) -> bool:
    return precision.channels_last(cfg.trainer.channels_last, cfg.network.get("torso", "nature"))


def _make(
    cfg: RunConfig,
    hparams: dict[str, Any],
    precision: RunPrecision,
    compile_mode: str,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    device: Any,
) -> Any:
    """The agent in ``precision`` and ``compile_mode``; run-level settings own precision,
    compile, channels-last and the seed."""
    return make_agent(
        cfg.agent_name,
        num_actions=num_actions,
        obs_shape=obs_shape,
        device=device,
        network=dict(cfg.network),
        **hparams,
        **precision.agent_kwargs(),
        channels_last=_channels_last(cfg, precision),
        compile=compile_mode,
        seed=cfg.seed,
    )


def compatibility_key(cfg: RunConfig) -> dict[str, Any]:
    """What must match between a checkpoint and the run that resumes it."""
    return {
        "agent": cfg.agent_name,
        "risk": [cfg.agent.get("risk", "neutral"), cfg.agent.get("risk_param")],
        "game": cfg.env.game,
        "protocol": cfg.env.protocol,
        "num_envs": cfg.env.num_envs,
        "replay_capacity": cfg.replay.capacity,
        "n_step": cfg.replay.n_step,
        "network": dict(cfg.network),
    }


def check_compatible(
    cfg: RunConfig,
    state: Mapping[str, Any],
    run_dir: Path,
    checkpoint: Path | None = None,
    device: torch.device | None = None,
) -> None:
    """Raise :class:`CheckpointError` unless run directory ``run_dir`` holds the run ``cfg``
    describes: the config its newest checkpoint (``checkpoint``, loaded as ``state``) was
    trained with or, before the first checkpoint, its config.json may differ from ``cfg`` only
    in the settings a resume may change
    (:func:`distrl_agents.training.resume.check_same_run`). ``trainer.precision`` and
    ``trainer.compile`` are compared as the run uses them: a recorded precision is kept (and a
    contradicting setting refused) by :func:`resolve_settings`; ``compile=auto`` takes the
    checkpoint's mode over where it was chosen on ``device``'s machine. Reads only."""
    if checkpoint is not None and "config" not in state:  # not written by distrl-train
        saved, mine = state.get("compatibility", {}), compatibility_key(cfg)
        diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diff:
            details = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(
                f"The run directory {run_dir} holds a checkpoint of a different experiment "
                f"({details}). Nothing was changed there. Choose another run_dir (or "
                "name/seed), or resume with the settings of that run."
            )
    saved_config = state.get("config") if checkpoint is not None else None
    now = cfg.to_dict()
    if saved_config is not None:
        precision = recorded_precision(state)
        compile_mode = _recorded_compile(state, device) if device is not None else None
        saved_config = _as_used(saved_config, precision, compile_mode)
        now = _as_used(now, precision, compile_mode)
    check_same_run(now, run_dir, checkpoint=checkpoint, checkpoint_config=saved_config)


def _as_used(
    config: Mapping[str, Any], precision: Mapping[str, str] | None, compile_mode: str | None
) -> dict[str, Any]:
    """``config`` with ``trainer.precision`` / ``trainer.compile`` as a resume from a checkpoint
    that recorded ``precision`` (:func:`~distrl_agents.training.precision.recorded_precision`)
    and ``compile_mode`` (chosen on this machine) would use them. A recorded precision is what
    the resumed run trains in whatever the setting (:func:`resolve_settings` keeps it and
    refuses a setting that contradicts it, in its own words), so it is not compared here;
    ``compile=auto`` becomes the recorded mode."""
    trainer = dict(config.get("trainer") or {})
    if precision is not None:
        trainer["precision"] = "(as the checkpoint recorded)"
    if trainer.get("compile") == "auto" and compile_mode is not None:
        trainer["compile"] = compile_mode
    return {**config, "trainer": trainer}
