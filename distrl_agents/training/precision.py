"""``trainer.precision=auto`` on a CPU: time fp32 and bf16 for each part, keep the faster.

Whether bf16 pays on a CPU depends on more than its flags: an update of 32 frames gains from bf16
matrix units where the CPU has them, while acting on one game (a batch of one) may lose more to
the casts than it gains, and CPUs without bf16 units emulate it. So at start-up the run builds
throw-away copies of its agent (same hparams, network and batch size; fresh weights), times a
learning update and an acting step in each precision on synthetic inputs, alternating the
candidates so that load on a shared machine affects both alike, and keeps the faster for each
part. The result is logged and recorded in the agent's hparams (``precision``,
``act_precision``). Neither choice changes what is learned beyond rounding: weights, optimiser
state and losses stay fp32.

Where torch's oneDNN has no bf16 kernels for the CPU (no AVX-512 BW/VL/DQ, AMX or Arm bf16; an
AVX2-only x86 CPU, say), bf16 runs on slow reference paths: measured on a 2-core AVX2 EPYC, the
C51 update took 535 ms in bf16 against 55 ms in fp32 and acting 12.9 against 2.6 ms. There the
choice is fp32 without timing, because a timing can only mislead: next to other busy processes
the alternating measurement once picked bf16 acting there (52 against 82 ms per acting cycle).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import torch

from distrl_agents.types import Batch


@dataclass(frozen=True)
class PrecisionChoice:
    """The measured choice: ``update`` and ``act`` precisions, and the median ms of each (empty
    where nothing was timed, ``reason`` saying why)."""

    update: str
    act: str
    update_ms: dict[str, float]
    act_ms: dict[str, float]
    reason: str = ""

    def describe(self) -> str:
        if self.reason:
            return f"precision=auto: update {self.update}, acting {self.act} ({self.reason})"

        def part(name: str, chosen: str, ms: dict[str, float]) -> str:
            times = ", ".join(f"{p} {v:.2f} ms" for p, v in ms.items())
            return f"{name} {chosen} ({times})"

        return (
            "precision=auto (measured): "
            + part("update", self.update, self.update_ms)
            + "; "
            + part("acting", self.act, self.act_ms)
        )


def faster(ms: dict[str, float], margin: float = 0.05) -> str:
    """``bf16`` only where it is faster than fp32 by more than ``margin`` (ties keep fp32)."""
    return "bf16" if ms["bf16"] < ms["fp32"] * (1.0 - margin) else "fp32"


def cpu_has_bf16_kernels() -> bool:
    """Whether torch's oneDNN has bf16 kernels for this CPU
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: AVX-512 BW/VL/DQ, AMX or Arm bf16). Where
    torch cannot say, ``True``: the start-up measurement decides."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


NO_BF16_KERNELS = (
    "this CPU has no bf16 kernels in torch's oneDNN: bf16 would be emulated, so not timed"
)


def _median_ms(
    fns: dict[str, Callable[[], Any]], *, rounds: int, budget_s: float, sync: Callable[[], None]
) -> dict[str, float]:
    """Median ms per call of each function, calling them in turn (one warm-up call each)."""
    for fn in fns.values():
        fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    deadline = time.perf_counter() + budget_s
    for i in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[key].append((time.perf_counter() - start) * 1e3)
        if i >= 2 and time.perf_counter() > deadline:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def synthetic_batch(
    obs_shape: tuple[int, ...],
    obs_dtype: torch.dtype,
    num_actions: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> Batch:
    """A replay-shaped batch of random observations on ``device`` (the timing does not depend
    on values)."""
    g = torch.Generator().manual_seed(0)

    def frames() -> torch.Tensor:
        if obs_dtype == torch.uint8:
            return torch.randint(0, 256, (batch_size, *obs_shape), generator=g, dtype=torch.uint8)
        return torch.rand((batch_size, *obs_shape), generator=g).to(obs_dtype)

    batch = Batch(
        obs=frames(),
        action=torch.randint(0, num_actions, (batch_size,), generator=g),
        reward=torch.zeros(batch_size),
        discount=torch.full((batch_size,), 0.99),
        next_obs=frames(),
        weights=torch.ones(batch_size),
        indices=torch.arange(batch_size),
    )
    return Batch(**{f.name: getattr(batch, f.name).to(device) for f in fields(batch)})


def measure_precision(
    make: Callable[[str, str], Any],
    *,
    obs_shape: tuple[int, ...],
    obs_dtype: torch.dtype,
    num_actions: int,
    batch_size: int,
    num_envs: int,
    update_period: float,
    device: torch.device,
    rounds: int = 7,
    budget_s: float = 2.0,
) -> PrecisionChoice:
    """Time each part in fp32 and bf16 and choose the faster (fp32 for both, untimed, on a CPU
    without bf16 kernels: :func:`cpu_has_bf16_kernels`).

    Args:
        make: ``(update_precision, act_precision) -> agent``, a fresh throw-away agent.
        obs_shape, obs_dtype, num_actions: what the environment gives.
        batch_size: the run's batch size (the update); ``num_envs``: the acting batch;
            ``update_period``: acting steps per update.
        rounds, budget_s: at most ``rounds`` timed calls per candidate, fewer once a part has
            taken ``budget_s`` seconds (at least 3).
    """
    if device.type == "cpu" and not cpu_has_bf16_kernels():
        return PrecisionChoice("fp32", "fp32", {}, {}, reason=NO_BF16_KERNELS)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batch = synthetic_batch(obs_shape, obs_dtype, num_actions, batch_size, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        learners = {p: make(p, p) for p in ("fp32", "bf16")}
        update_ms = _median_ms(
            {p: partial(a.learn, batch) for p, a in learners.items()},
            rounds=rounds,
            budget_s=budget_s,
            sync=sync,
        )
        update = faster(update_ms)
        # Acting is timed in the agent the run will build (its update precision and memory
        # format), with each acting precision, as in a run: the online weights change once per
        # ``update_period`` acting steps (a bf16 acting copy is then refreshed once).
        rng = np.random.default_rng(0)
        high = 256 if obs_dtype == torch.uint8 else 2
        obs = rng.integers(0, high, (num_envs, *obs_shape)).astype(
            np.uint8 if obs_dtype == torch.uint8 else np.float32
        )
        actors = {p: make(update, p) for p in ("fp32", "bf16")}
        period = max(1, round(update_period))

        def cycle(agent: Any) -> None:
            agent.weights_changed()
            for _ in range(period):
                agent.act(obs, 0.0)

        act_ms = _median_ms(
            {p: partial(cycle, a) for p, a in actors.items()},
            rounds=rounds * 3,
            budget_s=budget_s / 2,
            sync=sync,
        )
        act_ms = {p: v / period for p, v in act_ms.items()}
    return PrecisionChoice(update=update, act=faster(act_ms), update_ms=update_ms, act_ms=act_ms)


class Described(Protocol):
    """A start-up choice that can say what it measured and chose."""

    def describe(self) -> str: ...


ChoiceT = TypeVar("ChoiceT", bound=Described)

#: start-up choices by configuration key (precision and compile choices use distinct keys)
_CACHE: dict[str, Any] = {}


def cached_choice(key: str, compute: Callable[[], ChoiceT]) -> ChoiceT:
    """Measure once per process and configuration (a sweep or test suite builds many runs);
    the first measurement is logged."""
    if key not in _CACHE:
        _CACHE[key] = compute()
        print(_CACHE[key].describe(), file=sys.stderr, flush=True)
    return cast("ChoiceT", _CACHE[key])
