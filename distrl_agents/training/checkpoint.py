"""Atomic, verified checkpoints in ``<run_dir>/checkpoints/``.

Layout: one directory per checkpoint, ``step_<agent_step>/`` (zero-padded), holding
``state.pt`` (networks, optimisers, target network, counters, schedules, RNG states, the config)
and, in the newest checkpoint only, ``replay.bin`` (the replay buffer). A checkpoint is written
into ``step_<N>.tmp/`` and renamed into place only when complete (``os.replace`` of a directory
is atomic on POSIX), so a kill at any moment leaves the previous checkpoint intact. The last
``keep`` checkpoints are kept; older ones, and the replay files of all but the newest, are removed
only after the new one is in place.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"
REPLAY_FILE = "replay.bin"
_STEP_DIR = re.compile(r"^step_(\d+)$")
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint; the message says what to do."""


def checkpoint_dir(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    state: dict[str, Any],
    *,
    write_replay: Callable[[Path], None] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``state`` (and the replay through ``write_replay(path)``) as checkpoint ``step``."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:012d}"
    tmp = root / f"step_{step:012d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    payload = {"format_version": FORMAT_VERSION, **state}
    torch.save(payload, tmp / STATE_FILE)
    if write_replay is not None:
        write_replay(tmp / REPLAY_FILE)
    _fsync_dir(tmp)
    if final.exists():  # the same step saved again (e.g. a signal right after a periodic save)
        old = root / f"step_{step:012d}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    _prune(run_dir, keep)
    return final


def _prune(run_dir: str | os.PathLike[str], keep: int) -> None:
    complete = list_checkpoints(run_dir)
    for p in complete[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in complete[-keep:-1]:
        replay = p / REPLAY_FILE
        if replay.exists() and (complete[-1] / REPLAY_FILE).exists():
            replay.unlink()
    for p in checkpoint_dir(run_dir).glob("step_*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_state(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load ``state.pt`` of a checkpoint directory (or the file itself)."""
    path = Path(path)
    file = path / STATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: expected a checkpoint directory with {STATE_FILE} or a "
            f"run directory with checkpoints/step_*/ inside."
        )
    try:
        state = torch.load(file, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged zip / pickle
        raise CheckpointError(
            f"Checkpoint {file} is corrupt or truncated ({type(exc).__name__}: {exc}). Resume from "
            "an older checkpoint by deleting this directory, or start a new run directory."
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file} is not a distrl-agents checkpoint of format {FORMAT_VERSION}; use a "
            "checkpoint written by this version of distrl-train."
        )
    return state


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory from a run directory, a checkpoint directory or a ``state.pt``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run directory or a checkpoint.")
    if path.is_file():
        return path.parent
    if (path / STATE_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(
            f"No checkpoint in {path}: expected {path}/checkpoints/step_*/{STATE_FILE}. Was the "
            "run started with checkpoints on, and did it reach its first checkpoint?"
        )
    return latest
