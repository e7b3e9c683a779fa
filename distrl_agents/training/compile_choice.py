"""``trainer.compile=auto``: compile the update only where it is measured to pay.

Whether ``torch.compile`` speeds up an update depends on the agent, the network and the device:
on a 2-core AVX2 CPU it made QR-DQN's update 1.48x faster (110.9 -> 74.7 ms, Nature network) and
IQN's with the DER network not at all (203.8 -> 204.1 ms), and compiling costs seconds to a
minute at start-up. So at start-up the run builds throw-away copies of its agent (same hparams,
precisions and batch size; fresh weights), compiles each candidate mode with a few warm-up
updates on a synthetic batch, then times eager and compiled updates in turn and keeps a compiled
mode only where it is faster than eager by more than a margin. A mode whose compilation fails
(no C compiler, an unsupported op) is dropped with the reason, and the run trains eagerly.
Candidates: ``update`` everywhere, and ``graphs`` (CUDA graphs) on a CUDA device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from distrl_agents.training.precision import _median_ms, synthetic_batch

#: a compiled mode is kept only where its update is faster than eager by more than this
#: fraction (compiled code also costs start-up time and recompiles on a change)
MARGIN = 0.1
#: updates run before timing each candidate: the first compiles, later ones may recompile once
#: (optimiser state created on the first step, noise buffers)
WARMUP_UPDATES = 3


@dataclass(frozen=True)
class CompileChoice:
    """The measured choice: ``mode``, the median ms per update of each timed mode, the seconds
    each compiled mode took to compile and warm up, and why any candidate was dropped."""

    mode: str
    update_ms: dict[str, float]
    compile_s: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        timed = ", ".join(
            f"{m} {ms:.2f} ms" + (f" (compiled in {self.compile_s[m]:.0f} s)" if m in
            self.compile_s else "")
            for m, ms in self.update_ms.items()
        )  # fmt: skip
        text = f"compile=auto (measured): {self.mode} ({timed}"
        if self.dropped:
            text += "; " + "; ".join(f"{m} dropped: {why}" for m, why in self.dropped.items())
        return text + ")"


def candidates(device: torch.device) -> tuple[str, ...]:
    """The modes ``compile=auto`` times, eager first."""
    return ("off", "update", "graphs") if device.type == "cuda" else ("off", "update")


def choose(update_ms: dict[str, float], margin: float = MARGIN) -> str:
    """The fastest compiled mode if it beats eager (``off``) by more than ``margin``, else
    ``off``."""
    compiled = {m: v for m, v in update_ms.items() if m != "off"}
    if not compiled:
        return "off"
    best = min(compiled, key=compiled.__getitem__)
    return best if compiled[best] < update_ms["off"] * (1.0 - margin) else "off"


def measure_compile(
    make: Callable[[str], Any],
    *,
    obs_shape: tuple[int, ...],
    obs_dtype: torch.dtype,
    num_actions: int,
    batch_size: int,
    device: torch.device,
    modes: Sequence[str] | None = None,
    rounds: int = 7,
    budget_s: float = 3.0,
    margin: float = MARGIN,
) -> CompileChoice:
    """Time the update eager and under each compiled mode; keep the faster (see the module).

    Args:
        make: ``compile_mode -> agent``, a fresh throw-away agent in the run's precisions.
        obs_shape, obs_dtype, num_actions, batch_size: the run's batch.
        modes: the candidates (default :func:`candidates`), ``off`` first.
        rounds, budget_s: at most ``rounds`` timed updates per mode, fewer once ``budget_s``
            has passed (at least 3).
    """
    modes = tuple(modes or candidates(device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batch = synthetic_batch(obs_shape, obs_dtype, num_actions, batch_size, device)
    learners: dict[str, Any] = {}
    compile_s: dict[str, float] = {}
    dropped: dict[str, str] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for mode in modes:
            agent = make(mode)
            if mode != "off":
                start = time.perf_counter()
                try:
                    for _ in range(WARMUP_UPDATES):
                        agent.learn(batch)
                    sync()
                except Exception as exc:  # a failure inside compiled code on the device
                    dropped[mode] = f"failed: {exc!r}"[:200]
                    continue
                if not agent.update_compiled:  # compilation failed and fell back to eager
                    dropped[mode] = "compilation failed (torch.compile warned why)"
                    continue
                compile_s[mode] = time.perf_counter() - start
            learners[mode] = agent
        update_ms = _median_ms(
            {m: partial(a.learn, batch) for m, a in learners.items()},
            rounds=rounds,
            budget_s=budget_s,
            sync=sync,
        )
    return CompileChoice(choose(update_ms, margin), update_ms, compile_s, dropped)
