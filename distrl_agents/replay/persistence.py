"""What of a :class:`~distrl_agents.replay.buffer.ReplayBuffer` is saved, and how it is restored.

One file (``distrl_agents.replay.serialization``) holds the constructor arguments, the cursors and
RNG state, the filled part of every environment's frame ring, the per-slot and per-env arrays
verbatim, and the sum tree. See ``docs/replay.md`` ("Save / load").
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distrl_agents.replay.serialization import (
    ArraySource,
    ReplayFileReader,
    ReplayLoadError,
    write_replay_file,
)

if TYPE_CHECKING:
    from distrl_agents.replay.buffer import ReplayBuffer

# Names of the per-slot and per-env numpy arrays saved verbatim (frames and the tree are separate).
SLOT_ARRAYS = ("_action", "_return", "_discount", "_nstep", "_stack_pos", "_ready")
ENV_ARRAYS = ("_acc_return", "_acc_active", "_prev_term", "_prev_trunc", "_prev_valid")
# Constructor arguments that must match for buf.load(path) into an existing buffer.
_CONFIG_KEYS = (
    "capacity",
    "num_envs",
    "frame_shape",
    "frame_dtype",
    "stack_size",
    "n_step",
    "gamma",
    "prioritized",
    "alpha",
    "beta",
    "beta_steps",
    "priority_eps",
)


class LoadMethod:
    """``ReplayBuffer.load(path, device=...)`` builds a new buffer from a file;
    ``buf.load(path)`` restores the file into the existing ``buf`` (and returns it).

    Both spellings are supported so that neither silently does the other's job (a plain
    classmethod called on an instance would return a new buffer and leave ``buf`` unchanged).
    """

    def __get__(self, obj: ReplayBuffer | None, owner: type[ReplayBuffer]) -> Any:
        if obj is None:
            return functools.partial(load_new, owner)
        return functools.partial(load_into, obj)


def buffer_config(buf: ReplayBuffer) -> dict[str, Any]:
    """The constructor arguments of ``buf`` (JSON-able), as saved in the file's header."""
    return {
        "capacity": buf.capacity,
        "num_envs": buf.num_envs,
        "frame_shape": list(buf.frame_shape),
        "frame_dtype": buf.frame_dtype.str,
        "stack_size": buf.stack_size,
        "n_step": buf.n_step,
        "gamma": buf.gamma,
        "prioritized": buf.prioritized,
        "alpha": buf.alpha,
        "beta": buf.beta0,
        "beta_steps": buf.beta_steps,
        "priority_eps": buf.priority_eps,
        "seed": buf.seed,
    }


def _filled_ranges(buf: ReplayBuffer, t: int) -> list[tuple[int, int]]:
    """Slot ranges written so far after ``t`` adds: the first ``min(t, segment)`` slots of
    every environment's ring (the rest is still zero pages and is not saved)."""
    filled = min(int(t), buf.segment)
    return [(int(b), int(b) + filled) for b in buf._env_base]


def save(buf: ReplayBuffer, path: str | os.PathLike[str]) -> None:
    """Write the complete state of ``buf`` (frames, metadata, cursors, sum tree, RNG) to one
    file; see :meth:`ReplayBuffer.save`."""
    header = {
        "config": buffer_config(buf),
        "state": {
            "t": buf._t,
            "num_valid": buf._num_valid,
            "num_ready": buf._num_ready,
            "max_priority": buf._max_priority,
            "rng": buf._rng.bit_generator.state,
        },
    }
    fs = buf._frames
    ranges = _filled_ranges(buf, buf._t)
    rows = sum(hi - lo for lo, hi in ranges)
    arrays = [
        ArraySource("frames", fs.dtype, (rows, *fs.frame_shape), lambda: fs.iter_chunks(ranges)),
    ]
    arrays += [
        ArraySource.from_array(name, getattr(buf, name)) for name in SLOT_ARRAYS + ENV_ARRAYS
    ]
    if buf._tree is not None:
        arrays.append(ArraySource.from_array("sum_tree", buf._tree.tree))
    write_replay_file(path, header, arrays)


def load_new(
    cls: type[ReplayBuffer],
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    storage_device: str | torch.device = "cpu",
    storage_backend: str = "auto",
) -> ReplayBuffer:
    """A new buffer built with the file's configuration and holding its state."""
    with ReplayFileReader(path) as reader:
        cfg = dict(reader.header["config"])
        cfg["frame_shape"] = tuple(cfg["frame_shape"])
        cfg["frame_dtype"] = np.dtype(cfg["frame_dtype"])
        buf = cls(
            cfg.pop("capacity"),
            **cfg,
            device=device,
            storage_device=storage_device,
            storage_backend=storage_backend,
        )
        _restore(buf, reader)
    return buf


def load_into(buf: ReplayBuffer, path: str | os.PathLike[str]) -> ReplayBuffer:
    """Restore the file into ``buf``, which must have been built with the same configuration."""
    with ReplayFileReader(path) as reader:
        saved = reader.header["config"]
        mine = buffer_config(buf)
        diff = [k for k in _CONFIG_KEYS if saved.get(k) != mine[k]]
        if diff:
            details = ", ".join(f"{k}: file {saved.get(k)!r} vs buffer {mine[k]!r}" for k in diff)
            raise ReplayLoadError(
                f"replay file {path} was saved with a different configuration ({details}). "
                "Build the buffer with the saved configuration, or use "
                "ReplayBuffer.load(path, device=...) to build it from the file."
            )
        _restore(buf, reader)
    return buf


def _restore(buf: ReplayBuffer, reader: ReplayFileReader) -> None:
    try:
        fs = buf._frames
        ranges = _filled_ranges(buf, int(reader.header["state"]["t"]))
        rows = sum(hi - lo for lo, hi in ranges)
        read_chunk = reader.read_chunks("frames", fs.dtype, (rows, *fs.frame_shape))
        fs.load_chunks(read_chunk, ranges)
        reader.finish("frames")
        for name in SLOT_ARRAYS + ENV_ARRAYS:
            reader.read_into(name, getattr(buf, name))
        if buf._tree is not None:
            reader.read_into("sum_tree", buf._tree.tree)
        state = reader.header["state"]
        buf._t = int(state["t"])
        buf._num_valid = int(state["num_valid"])
        buf._num_ready = int(state["num_ready"])
        buf._max_priority = float(state["max_priority"])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        buf._rng = rng
        if int(buf._ready.sum()) != buf._num_ready:
            raise ReplayLoadError(
                f"replay file {reader.path} is inconsistent (ready count mismatch). Restore it "
                "from a good copy or start with an empty buffer."
            )
    except BaseException:
        buf._clear()  # never leave a silently partial buffer behind
        raise
