"""Device, thread and seeding helpers for the training loop (precision: ``precision.py``)."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; a missing CUDA device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.device={name!r} but PyTorch sees no CUDA device here. Use "
            "trainer.device=auto or trainer.device=cpu, or install a CUDA build of torch."
        )
    return device


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_torch_threads(
    torch_threads: int, device: torch.device, *, env_threads: int, overlap: bool
) -> int:
    """torch's intra-op threads for a run: ``torch_threads`` when set (> 0), else 0 (torch's
    default, all CPUs), also next to ale-py's ``env_threads``: measured side by side on a quiet
    2-core CPU (scripts/bench_peers.py, docs/performance.md), capping torch at the CPUs the game
    threads leave (1 of 2) halved the whole loop's rate (C51 41.8 -> 83.8 agent steps/s with 2
    threads, IQN 5.9 -> 12.9): the game threads mostly wait while the learner updates.
    ``device``, ``env_threads`` and ``overlap`` are kept for callers that report them."""
    del device, env_threads, overlap
    return max(0, int(torch_threads))


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code draws from the global RNG)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_ALLOCATOR_TUNED = False


def tune_host_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Keep glibc from returning every large tensor to the OS (and faulting it back in).

    By default glibc serves allocations above a few MB with ``mmap`` and unmaps them on free,
    so each update's activations and gradients (several MB each for the Nature torso) cost page
    faults on every step: on a 2-core CPU that is 30-50% of a bf16 update. Raising
    ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` keeps such blocks in the heap for reuse (the
    same effect as the ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment
    variables). Buffers larger than ``mmap_threshold`` (the replay frames) still use ``mmap``.
    Returns False where this is not glibc; harmless to call twice.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        ok = bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold))) and bool(
            libc.mallopt(m_trim_threshold, int(trim_threshold))
        )
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


#: Bytes per stored transition (an 84x84 frame plus metadata; see docs/replay.md).
BYTES_PER_TRANSITION = 7_100


def replay_storage_device(storage: str, device: torch.device, capacity: int) -> torch.device:
    """Where the replay frames live: ``host`` RAM, the training ``device``, or ``auto``: the GPU
    when the whole buffer takes at most half of its free memory (a batch then never crosses
    PCIe), else host RAM with pinned, non-blocking copies."""
    if storage == "device":
        return device
    if storage == "auto" and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if capacity * BYTES_PER_TRANSITION <= free // 2:
            return device
    return torch.device("cpu")
