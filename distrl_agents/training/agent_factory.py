"""The agent a run configuration describes, and whether a checkpoint belongs to that run.

Training (:class:`distrl_agents.training.loop.Trainer`) and evaluation (``distrl-eval``) both
build their agent with :func:`build_agent`, so a checkpoint is always rebuilt the way it was
trained. :func:`check_compatible` refuses a command whose settings differ from the run its run
directory holds (other than the few a resume may change), before any set-up.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from distrl_agents.agents import RUN_LEVEL_HPARAMS, agent_class, make_agent
from distrl_agents.agents.runtime import COMPILE_MODES
from distrl_agents.training.checkpoint import CheckpointError
from distrl_agents.training.compile_choice import measure_compile
from distrl_agents.training.config import ConfigError, RunConfig
from distrl_agents.training.device import resolve_precision
from distrl_agents.training.precision import cached_choice, measure_precision
from distrl_agents.training.resume import check_same_run

#: ``make(update_precision, act_precision, compile_mode) -> agent``
AgentMaker = Callable[..., Any]


def build_agent(
    cfg: RunConfig,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    device: Any,
    obs_dtype: torch.dtype = torch.uint8,
    previous: Mapping[str, Any] | None = None,
) -> Any:
    """The configured agent; precision, compile, channels-last and seed come from the run.

    ``trainer.precision=auto`` on a CPU measures fp32 and bf16 for the update and for acting
    (``distrl_agents.training.precision``) once per process and configuration, and logs it;
    ``trainer.compile=auto`` likewise times eager against compiled updates
    (``distrl_agents.training.compile_choice``) and keeps a compiled mode only where it pays.
    ``previous`` is what a checkpoint recorded (:func:`auto_choices`): where it was made on this
    machine (:func:`machine_key`), a resumed run keeps those choices instead of measuring again,
    so a run does not switch precision halfway (a timing on a busy machine can differ).
    """
    hparams = agent_hparams(cfg)
    make = _agent_maker(cfg, hparams, num_actions=num_actions, obs_shape=obs_shape, device=device)
    dev = torch.device(device)
    reuse = previous if previous and previous.get("machine") == machine_key(dev) else None
    precision = resolve_precision(cfg.trainer.precision, dev)
    act_precision = precision
    if precision == "auto" and reuse is not None:
        precision, act_precision = str(reuse["precision"]), str(reuse["act_precision"])
        print(
            f"precision=auto: update {precision}, acting {act_precision} (as chosen when this run "
            "started on this machine; not measured again)",
            file=sys.stderr,
            flush=True,
        )
    elif precision == "auto":
        precision, act_precision = _measured_precisions(
            cfg, hparams, make, num_actions=num_actions, obs_shape=obs_shape,
            obs_dtype=obs_dtype, device=dev,
        )  # fmt: skip
    if cfg.trainer.compile != "auto":
        return make(precision, act_precision)
    if reuse is not None and reuse.get("compile") in COMPILE_MODES:
        mode = str(reuse["compile"])
        print(
            f"compile=auto: {mode} (as chosen when this run started on this machine; not "
            "measured again)",
            file=sys.stderr,
            flush=True,
        )
    else:
        mode = _measured_compile(
            cfg, hparams, make, precision, act_precision, num_actions=num_actions,
            obs_shape=obs_shape, obs_dtype=obs_dtype, device=dev,
        )  # fmt: skip
    return make(precision, act_precision, mode)


def machine_key(device: torch.device) -> dict[str, str]:
    """What makes the ``auto`` choices of one machine valid on another: the device's model and
    the torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model()
    return {"device": f"{device.type}: {name}", "torch": torch.__version__}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_choices(agent: Any, device: torch.device) -> dict[str, Any]:
    """What a checkpoint records of the run's precisions and compile mode, and where they were
    chosen (``previous`` of :func:`build_agent`)."""
    return {
        "machine": machine_key(device),
        "precision": agent.config.precision,
        "act_precision": agent.config.act_precision,
        "compile": agent.config.compile,
    }


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


def _uses_channels_last(cfg: RunConfig, precision: str) -> bool:
    if cfg.trainer.channels_last == "auto":
        # bf16 convolutions are fast in channels-last memory format (oneDNN / cuDNN).
        return cfg.network.get("torso", "nature") != "mlp" and precision == "bf16"
    return cfg.trainer.channels_last == "true"


def _agent_maker(
    cfg: RunConfig,
    hparams: dict[str, Any],
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    device: Any,
) -> AgentMaker:
    """``make(precision, act_precision, compile_mode)``: the agent in those precisions.

    Run-level settings own precision, compile, channels-last and the seed.
    """

    def make(precision: str, act_precision: str, compile_mode: str = cfg.trainer.compile) -> Any:
        return make_agent(
            cfg.agent_name,
            num_actions=num_actions,
            obs_shape=obs_shape,
            device=device,
            network=dict(cfg.network),
            **hparams,
            precision=precision,
            act_precision=act_precision,
            channels_last=_uses_channels_last(cfg, precision),
            compile=compile_mode,
            seed=cfg.seed,
        )

    return make


def _measured_precisions(
    cfg: RunConfig,
    hparams: dict[str, Any],
    make: AgentMaker,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    obs_dtype: torch.dtype,
    device: torch.device,
) -> tuple[str, str]:
    """(update, act) precisions for ``trainer.precision=auto`` on a CPU: both precisions timed
    for each part, the faster kept, with throw-away agents that are never compiled (the timing
    is of the eager parts). Measured once per process and configuration."""
    t = cfg.trainer
    key = json.dumps(
        [cfg.agent_name, repr(sorted(hparams.items())), dict(cfg.network), obs_shape,
         str(obs_dtype), num_actions, t.batch_size, cfg.env.num_envs, t.update_period,
         t.channels_last, str(device), torch.get_num_threads()],
        default=str,
    )  # fmt: skip
    choice = cached_choice(
        key,
        lambda: measure_precision(
            lambda update, act: make(update, act, "off"), obs_shape=obs_shape, obs_dtype=obs_dtype,
            num_actions=num_actions, batch_size=t.batch_size, num_envs=cfg.env.num_envs,
            update_period=t.update_period, device=device,
        ),
    )  # fmt: skip
    return choice.update, choice.act


def _measured_compile(
    cfg: RunConfig,
    hparams: dict[str, Any],
    make: AgentMaker,
    precision: str,
    act_precision: str,
    *,
    num_actions: int,
    obs_shape: tuple[int, ...],
    obs_dtype: torch.dtype,
    device: torch.device,
) -> str:
    """The compile mode for ``trainer.compile=auto``: eager and compiled updates timed with
    throw-away agents in the run's precisions (:mod:`distrl_agents.training.compile_choice`).
    Measured once per process and configuration."""
    t = cfg.trainer
    key = json.dumps(
        [cfg.agent_name, repr(sorted(hparams.items())), dict(cfg.network), obs_shape,
         str(obs_dtype), num_actions, t.batch_size, precision, act_precision, t.channels_last,
         str(device), torch.get_num_threads()],
        default=str,
    )  # fmt: skip
    choice = cached_choice(
        "compile " + key,
        lambda: measure_compile(
            lambda mode: make(precision, act_precision, mode), obs_shape=obs_shape,
            obs_dtype=obs_dtype, num_actions=num_actions, batch_size=t.batch_size,
            device=device,
        ),
    )  # fmt: skip
    return choice.mode


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
    ``trainer.compile`` are compared as the run uses them: ``auto`` on the ``device`` where the
    checkpoint made its choices takes those choices over (:func:`build_agent`). Reads only."""
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
        choices = state.get("auto_choices")
        same_machine = bool(
            choices and device is not None and choices.get("machine") == machine_key(device)
        )
        saved_config = _as_used(saved_config, choices if same_machine else None)
        now = _as_used(now, choices if same_machine else None)
    check_same_run(now, run_dir, checkpoint=checkpoint, checkpoint_config=saved_config)


def _as_used(config: Mapping[str, Any], choices: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` with ``trainer.precision`` / ``trainer.compile`` as a resume from a checkpoint
    that recorded ``choices`` (its ``auto`` choices, made on this machine) would use them:
    ``auto`` becomes the recorded choice, ``fp32`` is fp32 for update and acting."""
    trainer = dict(config.get("trainer") or {})
    precision, compile_mode = trainer.get("precision"), trainer.get("compile")
    if choices is not None and precision == "auto":
        precision = (choices.get("precision"), choices.get("act_precision"))
    elif precision in ("fp32", "bf16"):
        precision = (precision, precision)
    if isinstance(precision, tuple):
        update, act = precision
        precision = update if update == act else f"auto (update {update}, acting {act})"
    if choices is not None and compile_mode == "auto" and choices.get("compile") in COMPILE_MODES:
        compile_mode = choices["compile"]
    trainer.update(precision=precision, compile=compile_mode)
    return {**config, "trainer": trainer}
