"""The replay buffer shared by every agent: frame ring, n-step accumulator, samplers, save/load.

See ``docs/replay.md`` for the storage layout, the zero-padding rule, n-step/truncation semantics
and how the training loop must call :meth:`ReplayBuffer.add` around autoreset.

Time and slots. Every :meth:`ReplayBuffer.add` call appends one entry per environment, so all
environments share one clock ``T`` (the number of ``add`` calls so far). Environment ``e`` owns the
contiguous ring segment ``[e * L, (e + 1) * L)`` with ``L = capacity // num_envs``; its entry at
time ``t`` lives in slot ``e * L + t % L``. Frame streams of different environments never mix.

Per slot we keep the newest frame of the observation, the action, and -- once the entry's n-step
window is complete -- its n-step return, bootstrap discount and bootstrap offset ``m``, plus
``stack_pos = min(steps since the episode started, stack_size - 1)`` which is all the sampler needs
to zero-pad a stack at an episode start. A ``ready`` flag marks entries that may be sampled; it is
set when the n-step window completes and cleared when the ring overwrites a frame the entry's stack
needs. Sampling therefore never checks episode boundaries or window validity (Dopamine's
"compute at insert" design), and every per-step operation is O(num_envs * (n + stack)) or
O(batch * log capacity).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from distrl_agents.replay import persistence
from distrl_agents.replay.checks import (
    ArrayLike,
    check_arguments,
    check_row,
    newest_frames,
    to_numpy,
)
from distrl_agents.replay.persistence import ENV_ARRAYS, SLOT_ARRAYS
from distrl_agents.replay.storage import FrameStore, make_frame_store
from distrl_agents.replay.sum_tree import SumTree
from distrl_agents.types import Batch


class ReplayBuffer:
    """Replay memory for ``num_envs`` parallel environments with n-step returns and optional
    proportional prioritized sampling.

    Args:
        capacity: total number of stored entries (frames), split evenly over the environments
            (rounded down to a multiple of ``num_envs``; ``buf.capacity`` is the value used).
        num_envs: number of parallel environments passed to each ``add`` call.
        frame_shape: shape of one frame (``(84, 84)`` for Atari, ``(d,)`` for vector tasks).
        frame_dtype: dtype of frames (``np.uint8`` for Atari; ``np.float32`` for vector tasks).
        stack_size: number of frames per observation (``obs`` is ``[S, *frame_shape]``).
        n_step: return horizon ``n``.
        gamma: discount ``gamma``.
        prioritized: proportional prioritized replay (Schaul et al. 2016) instead of uniform.
        alpha: priority exponent (``P(i) = p_i^alpha / sum_k p_k^alpha``).
        beta: initial importance-sampling exponent, annealed linearly to 1.
        beta_steps: number of agent steps (valid ``add`` rows, summed over environments; see
            :attr:`num_valid`) over which ``beta`` reaches 1; the default is 50M Atari frames /
            frame skip 4.
        priority_eps: ``epsilon`` added to every priority so none is zero (``p_i = loss_i + eps``).
        device: device of the tensors returned by ``sample``.
        storage_device: where frames are kept (``"cuda"`` keeps the whole buffer on the GPU).
        storage_backend: ``"auto"`` (numpy for CPU storage, torch otherwise), ``"numpy"`` or
            ``"torch"``; ``"torch"`` with a CPU storage device exercises the GPU code path on CPU.
        seed: seed of the sampler's random generator (saved and restored with the buffer).
    """

    load = persistence.LoadMethod()

    def __init__(
        self,
        capacity: int,
        *,
        num_envs: int = 1,
        frame_shape: tuple[int, ...] = (84, 84),
        frame_dtype: Any = np.uint8,
        stack_size: int = 4,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.5,
        beta: float = 0.4,
        beta_steps: int = 50_000_000 // 4,
        priority_eps: float = 1e-6,
        device: str | torch.device = "cpu",
        storage_device: str | torch.device = "cpu",
        storage_backend: str = "auto",
        seed: int = 0,
    ) -> None:
        check_arguments(
            capacity, num_envs, stack_size, n_step, gamma, prioritized, alpha, beta, beta_steps,
            priority_eps,
        )  # fmt: skip
        seg = int(capacity) // num_envs
        self.num_envs = int(num_envs)
        self.segment = seg  # L: entries per environment
        self.capacity = seg * self.num_envs
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.frame_dtype = np.dtype(frame_dtype)
        self.stack_size = int(stack_size)
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.prioritized = bool(prioritized)
        self.alpha = float(alpha)
        self.beta0 = float(beta)
        self.beta_steps = int(beta_steps)
        self.priority_eps = float(priority_eps)
        self.device = torch.device(device)
        self.storage_device = torch.device(storage_device)
        self.seed = int(seed)

        self._allocate(storage_backend)
        self._reset_state()

    def _allocate(self, storage_backend: str) -> None:
        """The frame store, the per-slot metadata, the sum tree and the per-env accumulators."""
        cap, n, envs = self.capacity, self.n_step, self.num_envs
        self._frames: FrameStore = make_frame_store(
            cap, self.frame_shape, self.frame_dtype, self.storage_device, storage_backend
        )
        self.storage_backend = (
            "numpy" if type(self._frames).__name__.startswith("Numpy") else "torch"
        )
        # Per-slot metadata, [C] each: 4 + 4 + 4 + 1 + 1 + 1 = 15 bytes per transition.
        self._action = np.zeros(cap, dtype=np.int32)  # action taken in the entry's observation
        self._return = np.zeros(cap, dtype=np.float32)  # n-step discounted reward sum
        self._discount = np.zeros(cap, dtype=np.float32)  # gamma^m * (1 - terminal)
        self._nstep = np.zeros(cap, dtype=np.uint8)  # m: bootstrap entry is m steps later
        self._stack_pos = np.zeros(cap, dtype=np.uint8)  # min(steps since episode start, S - 1)
        self._ready = np.zeros(cap, dtype=np.bool_)  # sampleable
        self._tree = SumTree(cap) if self.prioritized else None
        # Per-env n-step accumulator (Dopamine-style, computed at insert): the pending entry at
        # time t (t % n == q) holds sum_{j=t}^{T-1} gamma^(j-t) r_j in _acc_return[e, q].
        self._acc_return = np.zeros((envs, n), dtype=np.float64)  # [E, n]
        self._acc_active = np.zeros((envs, n), dtype=np.bool_)  # [E, n]
        self._prev_term = np.zeros(envs, dtype=np.bool_)  # [E] flags of the previous entry
        self._prev_trunc = np.zeros(envs, dtype=np.bool_)
        self._prev_valid = np.zeros(envs, dtype=np.bool_)  # False: the next entry starts an episode

        self._env_base = (
            np.arange(envs, dtype=np.int64) * self.segment
        )  # [E] first slot of each segment
        self._gamma_pow = self.gamma ** np.arange(n + 1, dtype=np.float64)  # [n + 1]
        self._stack_lags = np.arange(
            self.stack_size - 1, -1, -1, dtype=np.int64
        )  # [S] oldest first
        self._evict_lags = np.arange(self.stack_size, dtype=np.int64)  # [S]

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self._t = 0  # number of add() calls = per-env clock T
        self._num_valid = 0  # valid add() rows (agent steps, autoreset rows excluded): beta's clock
        self._num_ready = 0
        self._max_priority = 1.0  # running max of (priority + eps); new entries get its ^alpha
        self._rng = np.random.default_rng(self.seed)

    def _clear(self) -> None:
        """Empty the buffer (used after a failed load so no partial state survives)."""
        for name in SLOT_ARRAYS + ENV_ARRAYS:
            getattr(self, name).fill(0)
        self._frames.clear()
        if self._tree is not None:
            self._tree.clear()
        self._reset_state()

    def __len__(self) -> int:
        """Number of currently sampleable transitions."""
        return self._num_ready

    @property
    def num_added(self) -> int:
        """Total ``add`` rows so far (env steps, summed over environments, ``valid`` or not)."""
        return self._t * self.num_envs

    @property
    def num_valid(self) -> int:
        """Valid ``add`` rows so far (agent steps: autoreset rows with ``valid=False`` excluded)."""
        return self._num_valid

    @property
    def beta(self) -> float:
        """Current importance-sampling exponent: ``beta0 + (1 - beta0) * min(1, num_valid /
        beta_steps)``. The schedule's clock is :attr:`num_valid` (agent steps summed over
        environments), so ``sample`` anneals it without any call from the training loop, and it
        resumes exactly after save/load."""
        if self.beta_steps <= 0:
            return 1.0
        frac = min(1.0, self._num_valid / self.beta_steps)
        return self.beta0 + (1.0 - self.beta0) * frac

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays (frames, metadata, sum tree, accumulators)."""
        total = self._frames.nbytes
        total += sum(getattr(self, name).nbytes for name in SLOT_ARRAYS + ENV_ARRAYS)
        if self._tree is not None:
            total += self._tree.nbytes
        return int(total)

    def __repr__(self) -> str:
        kind = "prioritized" if self.prioritized else "uniform"
        return (
            f"ReplayBuffer({kind}, capacity={self.capacity}, num_envs={self.num_envs}, "
            f"len={len(self)}, num_added={self.num_added}, n_step={self.n_step}, "
            f"stack_size={self.stack_size}, frame={self.frame_shape}:{self.frame_dtype})"
        )

    # ------------------------------------------------------------------ add
    def add(
        self,
        obs: np.ndarray | torch.Tensor,
        action: ArrayLike,
        reward: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
        valid: ArrayLike | None = None,
    ) -> None:
        """Append one env step for every environment.

        Args:
            obs: ``[E, S, *frame]`` observation the action was taken in (only ``obs[:, -1]`` is
                stored; ``[E, *frame]`` newest frames are accepted too).
            action: ``[E]`` action taken in ``obs``.
            reward: ``[E]`` reward of that step (already clipped by the caller).
            terminated: ``[E]`` true terminal (game over, or a life loss under the "nature"
                protocol): the n-step return stops here and does not bootstrap.
            truncated: ``[E]`` time limit: the return stops here and bootstraps from the next entry
                (the final observation, added next with ``valid=False``).
            valid: ``[E]`` False when ``obs`` is only the final observation of an episode that has
                just ended (the autoreset step): its frame is stored as the bootstrap state, no
                transition starts at it (action/reward/flags ignored) and the next entry of that
                environment starts a new episode (its stack is zero-padded). Default: all True.
        """
        frames = newest_frames(
            obs, self.num_envs, self.stack_size, self.frame_shape, self.frame_dtype
        )
        envs = self.num_envs
        act = check_row("action", action, np.int64, envs)
        rew = check_row("reward", reward, np.float64, envs)
        term = check_row("terminated", terminated, np.bool_, envs)
        trunc = check_row("truncated", truncated, np.bool_, envs)
        val = (
            np.ones(envs, np.bool_) if valid is None else check_row("valid", valid, np.bool_, envs)
        )
        t_now = self._t
        tree_slots: list[np.ndarray] = []  # sum-tree leaves to change, applied once at the end
        tree_values: list[np.ndarray] = []
        self._evict(t_now, tree_slots, tree_values)
        self._store(t_now, frames, act, val)
        self._finish_windows(t_now, val, tree_slots, tree_values)
        self._open_window(t_now, rew, val)
        if self._tree is not None and tree_slots:
            self._tree.set(np.concatenate(tree_slots), np.concatenate(tree_values))

        self._prev_term = term & val
        self._prev_trunc = trunc & val
        self._prev_valid = val
        self._t = t_now + 1
        self._num_valid += int(val.sum())

    def _evict(self, t_now: int, tree_slots: list, tree_values: list) -> None:
        """1. Unready the entries whose stack needs the frame about to be overwritten (time
        T - L): the entry at T - L + j needs it iff its stack reaches back j frames
        (stack_pos >= j)."""
        seg = self.segment
        if t_now < seg:
            return
        pos = t_now % seg
        ev_slots = self._env_base[:, None] + (pos + self._evict_lags)[None, :] % seg  # [E, S]
        ev = self._ready[ev_slots] & (self._stack_pos[ev_slots] >= self._evict_lags[None, :])
        if ev.any():
            gone = ev_slots[ev]
            self._ready[gone] = False
            self._num_ready -= int(gone.size)
            tree_slots.append(gone)
            tree_values.append(np.zeros(gone.size))

    def _store(self, t_now: int, frames: Any, act: np.ndarray, val: np.ndarray) -> None:
        """2. Store the entry (``frames`` ``[E, *frame]``). A stack continues from the previous
        entry unless that one ended an episode (valid=False) or this is the environment's first
        entry: then it restarts at 0."""
        seg = self.segment
        pos = t_now % seg
        slots = self._env_base + pos  # [E]
        self._frames.write(slots, frames)
        prev_slots = self._env_base + (pos - 1) % seg
        cont = np.minimum(self._stack_pos[prev_slots].astype(np.int64) + 1, self.stack_size - 1)
        self._stack_pos[slots] = np.where(self._prev_valid, cont, 0)
        self._action[slots] = np.where(val, act, 0)

    def _finish_windows(
        self, t_now: int, val: np.ndarray, tree_slots: list, tree_values: list
    ) -> None:
        """3. Finish pending n-step windows that end at T: the window of entry t = T - m ends
        when m == n, or earlier when entry T - 1 was terminal/truncated or entry T is an
        episode end. Target (Sutton & Barto 2018, eq. 7.1): G = sum_{k<m} gamma^k r_{t+k},
        bootstrap from entry t + m with discount gamma^m * (1 - terminal_{t+m-1})."""
        n = self.n_step
        m_q = (t_now - np.arange(n)) % n  # [n] steps since the pending entry in column q
        m_q[m_q == 0] = n
        cut = self._prev_term | self._prev_trunc | ~val  # [E]
        fin = self._acc_active & (cut[:, None] | (m_q == n)[None, :])  # [E, n]
        if not fin.any():
            return
        e_idx, q_idx = np.nonzero(fin)
        m = m_q[q_idx]
        done_slots = self._env_base[e_idx] + (t_now - m) % self.segment
        self._return[done_slots] = self._acc_return[e_idx, q_idx]
        self._discount[done_slots] = self._gamma_pow[m] * (~self._prev_term[e_idx])
        self._nstep[done_slots] = m
        self._ready[done_slots] = True
        self._num_ready += int(done_slots.size)
        # New transitions get the maximal priority seen so far (Schaul et al., Alg. 1 l.6).
        tree_slots.append(done_slots)
        tree_values.append(np.full(done_slots.size, self._max_priority**self.alpha))
        self._acc_active[fin] = False
        self._acc_return[fin] = 0.0

    def _open_window(self, t_now: int, rew: np.ndarray, val: np.ndarray) -> None:
        """4. Open this entry's window and add its reward to every open window of its env."""
        n = self.n_step
        col = t_now % n
        self._acc_active[:, col] = val
        self._acc_return[:, col] = 0.0
        lag = (t_now - np.arange(n)) % n  # [n] steps from each open entry to T
        self._acc_return += np.where(
            self._acc_active, self._gamma_pow[lag][None, :] * rew[:, None], 0.0
        )

    # ------------------------------------------------------------------ sample
    def _check_batch_size(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._num_ready == 0:
            raise ValueError(
                "cannot sample: the buffer holds no complete transition yet (a transition becomes "
                f"sampleable once its {self.n_step}-step window is complete). Add more env steps "
                "before sampling (use a warm-up period, e.g. min_replay_size >= batch_size)."
            )
        if batch_size > self._num_ready:
            raise ValueError(
                f"cannot sample a batch of {batch_size}: only {self._num_ready} transitions are "
                "sampleable. Add more env steps first (warm-up >= batch_size) or use a smaller batch."
            )

    def _sample_uniform(self, batch_size: int) -> np.ndarray:
        """Uniform over ready slots by rejection from the written part of every segment."""
        written = min(self._t, self.segment)
        span = written * self.num_envs
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        for _ in range(64):  # acceptance is len/span (near 1 in steady state); 64 rounds is ample
            need = batch_size - filled
            x = self._rng.integers(0, span, size=need)
            idx = self._env_base[x // written] + x % written
            idx = idx[self._ready[idx]]
            out[filled : filled + idx.size] = idx
            filled += idx.size
            if filled == batch_size:
                return out
        # Degenerate tiny buffers only (almost nothing sampleable): draw from the explicit list.
        ready = np.flatnonzero(self._ready)
        out[filled:] = ready[self._rng.integers(0, ready.size, size=batch_size - filled)]
        return out

    def _sample_prioritized(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Stratified proportional sampling: one target per equal slice of the total mass."""
        assert self._tree is not None
        total = self._tree.total
        targets = (np.arange(batch_size) + self._rng.random(batch_size)) * (total / batch_size)
        idx = self._tree.find(targets)  # [B]
        probs = self._tree.get(idx) / total  # [B] P(i)
        # Importance weights w_i = (N * P(i))^-beta, normalised by the batch max
        # (Schaul et al. 2016, Sec. 3.4 and Alg. 1 l.10; batch max as in Dopamine).
        weights = (self._num_ready * probs) ** (-self.beta)
        weights /= weights.max()
        return idx, weights.astype(np.float32)

    def sample(self, batch_size: int) -> Batch:
        """A batch of ``batch_size`` transitions (with replacement) as tensors on ``device``.

        Uniform: every sampleable transition equally likely. Prioritized: ``P(i) =
        p_i^alpha / sum_k p_k^alpha`` with stratified sampling, ``weights`` = normalised
        importance weights at the current :attr:`beta` (annealed from ``num_valid``).
        """
        self._check_batch_size(batch_size)
        if self._tree is None:
            idx = self._sample_uniform(batch_size)
            weights = None
        else:
            idx, weights = self._sample_prioritized(batch_size)
        return self._gather(idx, weights)

    def batch_at(self, indices: ArrayLike) -> Batch:
        """The batch for explicit buffer ``indices`` (must be sampleable; weights are ones)."""
        idx = to_numpy(indices).astype(np.int64).reshape(-1)
        self._check_indices(idx, "batch_at")
        if not self._ready[idx].all():
            raise ValueError("batch_at(): some indices are not sampleable transitions right now")
        return self._gather(idx, None)

    def sampleable_indices(self) -> np.ndarray:
        """All currently sampleable slot indices (O(capacity): for tests and debugging only)."""
        return np.flatnonzero(self._ready)

    def _gather(self, idx: np.ndarray, weights: np.ndarray | None) -> Batch:
        seg = self.segment
        pos = idx % seg  # [B]
        base = idx - pos
        next_idx = base + (pos + self._nstep[idx]) % seg  # [B]
        heads = np.stack([idx, next_idx])  # [2, B]
        # Slots of the S frames of each stack, oldest first, within the entry's own segment.
        slots = (
            base[None, :, None] + (heads[..., None] - base[None, :, None] - self._stack_lags) % seg
        )
        pad = self._stack_lags > self._stack_pos[heads][..., None]  # [2, B, S] before episode start
        frames = self._frames.gather(
            slots, pad if pad.any() else None, self.device
        )  # [2, B, S, ...]

        dev = self.device
        action = self._action[idx].astype(np.int64)
        reward = self._return[idx]
        discount = self._discount[idx]
        w = np.ones(idx.shape[0], dtype=np.float32) if weights is None else weights
        return Batch(
            obs=frames[0],
            action=self._host_to_device(action, dev),
            reward=self._host_to_device(reward, dev),
            discount=self._host_to_device(discount, dev),
            next_obs=frames[1],
            weights=self._host_to_device(w, dev),
            indices=self._host_to_device(idx, dev),
        )

    @staticmethod
    def _host_to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if device.type == "cpu":
            return t
        return t.pin_memory().to(device, non_blocking=True)

    # ------------------------------------------------------------------ priorities
    def _check_indices(self, idx: np.ndarray, where: str) -> None:
        if idx.size and (idx.min() < 0 or idx.max() >= self.capacity):
            raise ValueError(
                f"{where}(): indices must be in [0, {self.capacity}); pass batch.indices from sample()"
            )

    def update_priorities(self, indices: ArrayLike, priorities: ArrayLike) -> None:
        """Set ``p_i = priority_i + eps`` for sampled ``indices`` (no-op for uniform replay).

        ``priorities`` is each sample's non-negative loss (or |TD error|), tensors or arrays of
        shape ``[B]``. Indices whose transition was evicted since it was sampled are skipped.
        """
        if self._tree is None:
            return
        idx = to_numpy(indices).astype(np.int64).reshape(-1)
        pr = to_numpy(priorities).astype(np.float64).reshape(-1)
        if idx.shape != pr.shape:
            raise ValueError(
                f"update_priorities(): got {idx.size} indices and {pr.size} priorities; pass one "
                "priority per sampled index (the per-sample loss, shape [B])"
            )
        self._check_indices(idx, "update_priorities")
        if not np.all(np.isfinite(pr)) or (pr.size and pr.min() < 0.0):
            raise ValueError(
                "update_priorities(): priorities must be finite and >= 0 (got NaN/inf or negative "
                "values); pass the per-sample loss before importance weighting, and check the loss "
                "for divergence."
            )
        keep = self._ready[idx]
        if not keep.all():
            idx, pr = idx[keep], pr[keep]
        if idx.size == 0:
            return
        p = pr + self.priority_eps
        self._max_priority = max(self._max_priority, float(p.max()))
        self._tree.set(idx, p**self.alpha)

    def priorities(self, indices: ArrayLike) -> np.ndarray:
        """Current tree values ``p_i^alpha`` at ``indices`` (prioritized only)."""
        if self._tree is None:
            raise ValueError("priorities(): this buffer samples uniformly (prioritized=False)")
        return self._tree.get(to_numpy(indices).astype(np.int64).reshape(-1))

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the complete state (frames, metadata, cursors, sum tree, RNG) to one file.

        Streamed array by array in 16 MiB chunks (no second copy in memory) and checksummed; of
        the frames only the filled part of each ring is written. Atomic: a temporary file in the
        same directory is renamed over ``path``. Read back with :attr:`load`.
        """
        persistence.save(self, path)
