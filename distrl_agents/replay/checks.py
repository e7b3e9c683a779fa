"""Checks of what a :class:`~distrl_agents.replay.buffer.ReplayBuffer` is given: its
constructor arguments and each ``add`` call's rows, with errors that say what to pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distrl_agents.replay.storage import torch_dtype

ArrayLike = np.ndarray | torch.Tensor | list | tuple | float | int | bool


def to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_arguments(
    capacity: int,
    num_envs: int,
    stack_size: int,
    n_step: int,
    gamma: float,
    prioritized: bool,
    alpha: float,
    beta: float,
    beta_steps: int,
    priority_eps: float,
) -> None:
    """Raise ``ValueError`` (saying what to use) for constructor arguments out of range."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if not 1 <= stack_size <= 255:
        raise ValueError(f"stack_size must be in [1, 255], got {stack_size}")
    if not 1 <= n_step <= 255:
        raise ValueError(f"n_step must be in [1, 255], got {n_step}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    seg = int(capacity) // num_envs
    if seg < n_step + stack_size:
        raise ValueError(
            f"capacity {capacity} is too small for num_envs={num_envs}, n_step={n_step}, "
            f"stack_size={stack_size}: each environment's ring needs at least n_step + "
            f"stack_size = {n_step + stack_size} entries, so use capacity >= "
            f"{(n_step + stack_size) * num_envs}."
        )
    if prioritized:
        if alpha < 0.0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if beta_steps < 0:
            raise ValueError(f"beta_steps must be >= 0, got {beta_steps}")
        if not priority_eps > 0.0:
            raise ValueError(
                f"priority_eps must be > 0 (got {priority_eps}) so that every stored transition "
                f"keeps a nonzero sampling probability; the usual value is 1e-6."
            )


def check_row(name: str, x: ArrayLike, dtype: Any, num_envs: int) -> np.ndarray:
    """``x`` as a ``[num_envs]`` array of ``dtype`` (one value per environment)."""
    arr = to_numpy(x)
    if arr.size != num_envs:
        raise ValueError(
            f"add(): {name} must have one value per environment, shape [{num_envs}], got "
            f"shape {list(arr.shape)}"
        )
    return arr.reshape(num_envs).astype(dtype, copy=False)


def newest_frames(
    obs: np.ndarray | torch.Tensor,
    num_envs: int,
    stack_size: int,
    frame_shape: tuple[int, ...],
    frame_dtype: np.dtype,
) -> np.ndarray | torch.Tensor:
    """The newest frames ``[E, *frame]`` of ``obs`` (``[E, S, *frame]``, or already the
    newest frames); ``ValueError`` for a wrong shape or dtype."""
    shape = tuple(obs.shape)
    full = (num_envs, stack_size, *frame_shape)
    single = (num_envs, *frame_shape)
    if shape == full:
        frames = obs[:, -1]
    elif shape == single:
        frames = obs
    else:
        raise ValueError(
            f"add(): obs must have shape [num_envs, stack_size, *frame_shape] = {list(full)} "
            f"(or just the newest frames {list(single)}), got {list(shape)}. Check num_envs, "
            f"stack_size and frame_shape of the ReplayBuffer."
        )
    if isinstance(obs, torch.Tensor):
        ok = obs.dtype == torch_dtype(frame_dtype)
        got = str(obs.dtype)
    else:
        ok = obs.dtype == frame_dtype
        got = str(obs.dtype)
    if not ok:
        raise ValueError(
            f"add(): obs dtype is {got}, the buffer stores {frame_dtype} frames. Pass raw "
            f"{frame_dtype} observations (do not normalise before storing) or build the "
            f"buffer with frame_dtype={got}."
        )
    return frames
