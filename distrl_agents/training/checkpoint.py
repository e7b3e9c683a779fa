"""Atomic, verified checkpoints in ``<run_dir>/checkpoints/``.

Layout: one directory per checkpoint, ``step_<agent_step>/`` (zero-padded), holding
``state.pt`` (networks, optimisers, target network, counters, schedules, RNG states, the config)
and, in the newest checkpoint only, ``replay.bin`` (the replay buffer). A checkpoint is written
into ``step_<N>.tmp/`` and renamed into place only when complete (``os.replace`` of a directory
is atomic on POSIX), so a kill at any moment leaves the previous checkpoint intact. The last
``keep`` checkpoints are kept; older ones, and the replay files of all but the newest, are removed
only after the new one is in place.

A checkpoint is data, never code: ``state.pt`` holds only tensors, numbers, strings and plain
containers (numpy arrays are stored as tensors and given back as arrays), and is read with
``torch.load(weights_only=True)``, so a shared or altered checkpoint cannot run anything when it
is loaded. Checkpoints of format 1 (numpy arrays pickled as such) are read the same way, with
numpy's array constructor allowed by name; anything else a pickle asks for is refused before
it is unpickled, with the file and what it asked for named.

A checkpoint that cannot be written (the disk filled up) leaves no partial directory behind and
raises :class:`CheckpointWriteError`, which names the newest complete checkpoint (untouched).
"""

from __future__ import annotations

import errno
import gc
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.pt"
REPLAY_FILE = "replay.bin"
_STEP_DIR = re.compile(r"^step_(\d+)$")
#: 2: numpy arrays stored as tensors (``{"__ndarray__": tensor}``), every string a plain str.
#: 1: numpy arrays pickled as numpy arrays; still read (see ``_SAFE_GLOBALS``).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_NDARRAY = "__ndarray__"
_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # what a pickled numpy array is rebuilt with
#: What a format-1 ``state.pt`` asks the unpickler for besides tensors: numpy's array and dtype
#: constructors (they build arrays of plain numbers) and torch's version string. Allowed by name
#: for ``weights_only=True``; nothing that can call a function of the caller's choosing.
_SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    *(
        type(np.dtype(t))
        for t in ("?", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8")
    ),
    (_RECONSTRUCT, "numpy._core.multiarray._reconstruct"),
    (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),  # the name numpy < 2 pickles
    torch.torch_version.TorchVersion,
]


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint; the message says what to do."""


class UnsafeCheckpointError(CheckpointError):
    """A ``state.pt`` whose pickle asks for objects other than tensors and plain data (loading
    it could run code); it was not loaded."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (e.g. the disk is full); the partial directory was
    removed and the newest complete checkpoint is untouched."""


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
    payload = {"format_version": FORMAT_VERSION, **_storable(state)}
    failure: tuple[str, int | None] | None = None
    writing = ""
    try:
        tmp.mkdir()
        writing = STATE_FILE
        torch.save(payload, tmp / STATE_FILE)
        writing = REPLAY_FILE
        if write_replay is not None:
            write_replay(tmp / REPLAY_FILE)
        _fsync_dir(tmp)
    except OSError as exc:
        failure = (str(exc), exc.errno)
    except RuntimeError as exc:
        if writing != STATE_FILE:  # not torch's zip writer failing: a bug, not the disk
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        failure = (str(exc), None)
    if failure is not None:
        # Out of the except block, the writer's frames are gone and with them the half-written
        # file it held open (whose space a removal would not give back until it is closed).
        gc.collect()
        written = _tree_bytes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(
            _write_failure_message(
                run_dir, final.name, *failure, payload, written, replay=write_replay is not None
            )
        )
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


def _storable(obj: Any) -> Any:
    """``obj`` with every numpy array as ``{"__ndarray__": tensor}``, numpy scalars as Python
    numbers and ``str`` subclasses as ``str``: what ``weights_only=True`` reads back. Containers
    without such values are returned as they are (a module's state dict keeps its metadata)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("a checkpoint cannot hold numpy arrays of Python objects")
        return {_NDARRAY: torch.from_numpy(np.array(obj, copy=True, order="C"))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str) and type(obj) is not str:
        return "" + obj
    return _map_container(obj, _storable)


def _restored(obj: Any) -> Any:
    """The inverse of :func:`_storable`: stored arrays back to numpy arrays."""
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get(_NDARRAY), torch.Tensor):
        return obj[_NDARRAY].cpu().numpy()
    return _map_container(obj, _restored)


def _map_container(obj: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn`` applied to the values of a dict, list or tuple; ``obj`` itself if none changed."""
    if isinstance(obj, dict):
        new = {k: fn(v) for k, v in obj.items()}
        return obj if all(new[k] is v for k, v in obj.items()) else new
    if type(obj) in (list, tuple):
        items = [fn(v) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else type(obj)(items)
    return obj


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if it does not exist)."""
    total = 0
    for p in path.rglob("*") if path.is_dir() else ():
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:
            pass
    return total


def _state_bytes(obj: Any) -> int:
    """Roughly the size of ``state.pt``: the bytes of its tensors."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_state_bytes(v) for v in obj)
    return 0


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _write_failure_message(
    run_dir: str | os.PathLike[str],
    name: str,
    error: str,
    errno_: int | None,
    payload: Any,
    written: int,
    *,
    replay: bool,
) -> str:
    """What happened to checkpoint ``name``, how much it needed, what is intact, what to do."""
    root = checkpoint_dir(run_dir)
    try:
        free: int | None = shutil.disk_usage(root).free
    except OSError:
        free = None
    latest = latest_checkpoint(run_dir)
    # The replay file is about as large as the newest checkpoint's (same buffer, same capacity).
    previous = latest / REPLAY_FILE if latest is not None else None
    replay_bytes = previous.stat().st_size if previous is not None and previous.is_file() else 0
    estimate = _state_bytes(payload) + replay_bytes
    needed = max(estimate, written)
    # "About" when the replay file's size is known (or none is written), else "more than".
    about = "about" if replay_bytes or not replay else "more than"
    # torch's zip writer says only "unexpected pos": full if what it needed does not fit now
    # (the partial files are gone, so their space counts as free).
    full = errno_ in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < needed)
    what = "the disk is full" if full else "writing failed"
    space = f"; {_mb(free)} free there" if free is not None else ""
    if latest is not None:
        intact = (
            f"The newest complete checkpoint, {latest.name}, is intact: relaunching the same "
            "command resumes from it"
        )
    else:
        intact = "There is no complete checkpoint yet: relaunching starts the run again"
    fix = (
        "Free some space there (or move the run directory to a larger disk; "
        "trainer.save_replay=false or trainer.keep_checkpoints=1 make checkpoints smaller)"
        if full
        else "Check the disk"
    )
    return (
        f"Checkpoint {name} could not be written to {root}: {what} ({error}). It needed "
        f"{about} {_mb(needed)} ({_mb(written)} written before it failed{space}). The partial "
        f"{name}.tmp was removed. {intact}. {fix}, then relaunch."
    )


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
    with torch.serialization.safe_globals(_SAFE_GLOBALS):
        _refuse_code(file)
        try:
            state = torch.load(file, map_location=map_location, weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged zip / pickle
            raise CheckpointError(
                f"Checkpoint {file} is corrupt or truncated ({type(exc).__name__}: {exc}). Resume "
                "from an older checkpoint by deleting this directory, or start a new run directory."
            ) from exc
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{file} is not a distrl-agents checkpoint of format "
            f"{' or '.join(map(str, READABLE_VERSIONS))}; use a checkpoint written by this "
            "version of distrl-train."
        )
    return dict(_restored(state))


def _refuse_code(file: Path) -> None:
    """Raise :class:`UnsafeCheckpointError` if the pickle of ``file`` names any function or
    class beyond tensors, plain data and ``_SAFE_GLOBALS`` (read from the pickle's opcodes,
    without unpickling anything). A damaged file is left to ``torch.load`` to report."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:
        return
    if found:
        raise UnsafeCheckpointError(
            f"{file} was not loaded: its pickle asks for {', '.join(sorted(found))}, which a "
            "distrl-agents checkpoint never holds (it stores only tensors, numbers, strings and "
            "plain containers), and loading it could run code. This file was not written by "
            "distrl-train, or it was altered since. Use a checkpoint from a source you trust, "
            "or train one yourself."
        )


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
