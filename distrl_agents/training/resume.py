"""What resuming a run needs besides the agent's state: whether the command describes the run
its directory holds, the checkpoint's replay buffer, the end of the games that were in progress,
and the run directory's evaluation records."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distrl_agents.replay import ReplayBuffer, ReplayLoadError
from distrl_agents.run_settings import NOT_RUN_SETTINGS, may_change_on_resume
from distrl_agents.training.checkpoint import CheckpointError

CONFIG_FILE = "config.json"
#: Mappings whose keys are free (agent hyperparameters, network options, env overrides): a key
#: set on one side only is a difference. Elsewhere a key on one side only is a field that
#: another version of distrl-agents added or removed, and is not compared.
_FREE_FORM = ("agent.", "network.", "env.overrides.")
_NOT_SET = "(not set)"
#: Defining fields added after runs had already been saved without them, each with the value
#: that reproduces what the code did before the field existed. A saved config that lacks one
#: is compared as if it held that value: a run from before the field resumes when the command
#: keeps the old behaviour, and is refused (saying which value resumes it) when it would not.
ADDED_FIELDS: dict[str, Any] = {
    "agent.loss_reduction": "mean",  # before: every agent's loss was the batch mean
    "trainer.warmup_actions": "uniform",  # before: the warm-up always acted uniformly
    # FQF before the authors' defaults (Kuwahara's choices were the only ones):
    "agent.fraction_loss": "w1_gradient",
    "agent.fraction_init": "xavier_small",
    "agent.entropy_of": "proposal",
    "agent.tau_hat_torso_grad": False,
    "agent.target_fractions": "current",
}


class RelaunchError(CheckpointError):
    """A command that describes another run than the one its run directory holds; nothing in
    that directory was changed."""


def resumable_settings() -> list[str]:
    """The config keys a resumed run may change (``logger.*`` stands for every logging key);
    :func:`distrl_agents.run_settings.may_change_on_resume` decides."""
    keys = [k for k in NOT_RUN_SETTINGS if may_change_on_resume(k)]
    keys = [k for k in keys if k not in ("experiment", "resume")]  # group choice, the command
    return sorted(k + ".*" if k == "logger" else k for k in keys)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"lr": 1}}`` -> ``{"agent.lr": 1}`` (empty mappings leave no key)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def defining_differences(
    saved: Mapping[str, Any], now: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for each config key that defines what a run trains
    (everything :func:`~distrl_agents.run_settings.may_change_on_resume` does not allow) and
    differs between a run's saved config and a new one; sorted by key."""
    # Through JSON, as config.json holds it (tuples become lists, keys strings).
    a = flat_config(json.loads(json.dumps(saved, default=str)))
    b = flat_config(json.loads(json.dumps(now, default=str)))
    for key, before in ADDED_FIELDS.items():
        if key in b and key not in a:  # saved before the field existed
            a[key] = before
    diffs = []
    for key in sorted(set(a) | set(b)):
        if may_change_on_resume(key):
            continue
        if (key not in a or key not in b) and not key.startswith(_FREE_FORM):
            continue
        old, new = a.get(key, _NOT_SET), b.get(key, _NOT_SET)
        if old != new:
            diffs.append((key, old, new))
    return diffs


def check_same_run(
    now: Mapping[str, Any],
    run_dir: Path,
    *,
    checkpoint: Path | None = None,
    checkpoint_config: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`RelaunchError` unless config ``now`` describes the run ``run_dir`` holds:
    the config its newest ``checkpoint`` was trained with (``checkpoint_config``) or, before the
    first checkpoint, its ``config.json``. Only :func:`resumable_settings` may differ. Reads
    only; called before any set-up, so a refused command changes nothing."""
    saved_file = run_dir / CONFIG_FILE
    if checkpoint_config is not None and checkpoint is not None:
        saved, source = checkpoint_config, f"checkpoint {checkpoint.name}"
    elif saved_file.is_file():
        try:
            saved = json.loads(saved_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RelaunchError(
                f"{saved_file} cannot be read ({exc}), so it is unknown which run {run_dir} "
                "holds. Nothing was changed. Choose another run_dir, or restore that file."
            ) from exc
        source = CONFIG_FILE
    else:
        return
    diffs = defining_differences(saved, now)
    if not diffs:
        return
    listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in diffs)
    fresh = (
        ""
        if checkpoint is not None
        else f" It has no checkpoint yet: if nothing in it is worth keeping, delete {run_dir} "
        "and relaunch."
    )
    raise RelaunchError(
        f"{run_dir} holds a run trained with other settings than this command gives ({source} "
        f"-> this command): {listed}. Nothing was changed there. To resume that run, relaunch "
        f"without these overrides (a resumed run may change only "
        f"{', '.join(resumable_settings())}). "
        "To train with the new settings, choose another run_dir (left unset, a command that "
        "changes a setting gets a directory of its own)." + fresh
    )


def load_replay(
    replay_file: Path, *, device: torch.device, storage_device: torch.device
) -> ReplayBuffer:
    """The replay buffer saved in a checkpoint, with the settings its run started with;
    :class:`CheckpointError` (saying what to do) if the file cannot be restored."""
    try:
        return ReplayBuffer.load(replay_file, device=device, storage_device=storage_device)
    except ReplayLoadError as exc:
        raise CheckpointError(
            f"The replay buffer of checkpoint {replay_file.parent} cannot be restored "
            f"({exc}). Nothing was changed. Delete that checkpoint directory to resume "
            "from the one before it, or set trainer.save_replay=false and move "
            f"{replay_file.name} away to resume with an empty buffer."
        ) from exc


def end_interrupted_games(replay: ReplayBuffer, obs: np.ndarray | None) -> None:
    """End the games in progress at the checkpoint (they cannot be restored): their last
    observation ``obs`` (``[E, S, *frame]``) ends those episodes as a time-limit truncation
    (it bootstraps, it is not terminal)."""
    if obs is None:
        return
    zeros = np.zeros(replay.num_envs)
    replay.add(obs, zeros.astype(np.int64), zeros, zeros.astype(bool), zeros.astype(bool),
               valid=np.zeros(replay.num_envs, dtype=bool))  # fmt: skip


def drop_records_after(path: Path, max_step: int) -> None:
    """Drop the JSON-lines records of ``path`` whose ``agent_step`` is after ``max_step`` (they
    belong to the stretch after the checkpoint, which the resumed run plays again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("agent_step", 0) <= max_step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    os.replace(tmp, path)


def last_recorded_step(path: Path) -> int:
    """The largest ``agent_step`` among the JSON-lines records of ``path`` (0 if none)."""
    recorded = 0
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                recorded = max(recorded, int(json.loads(line).get("agent_step", 0)))
            except (json.JSONDecodeError, TypeError, ValueError):
                continue
    return recorded
