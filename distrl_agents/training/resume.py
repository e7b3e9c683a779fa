"""What resuming a run needs besides the agent's state: the checkpoint's replay buffer, the end
of the games that were in progress, and the run directory's evaluation records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from distrl_agents.replay import ReplayBuffer, ReplayLoadError
from distrl_agents.training.checkpoint import CheckpointError


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
