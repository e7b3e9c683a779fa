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

The choice is made once per machine and configuration, not at every launch: a timing on a busy
machine is noise, and every run of a sweep should run the same code. :func:`decide_compile`
keeps each measured choice in a small JSON file (:func:`cache_path`: ``$DISTRL_CHOICE_CACHE``,
else ``$XDG_CACHE_HOME/distrl_agents/startup_choices.json``, else under ``~/.cache``) keyed by
the machine (device model, torch version, torch threads: ``precision.machine_key``) and the run's
agent, network, batch and precision; the first run measures (holding a lock, so the jobs of a
sweep started together wait for it and then read its choice) and every later run on that machine
reads it. ``DISTRL_REMEASURE=1`` measures again and replaces the entry. A resumed run keeps the
mode its checkpoint records where that was chosen on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import torch

from distrl_agents.training.precision import log
from distrl_agents.types import Batch

#: environment variables: the cache file's path, and "1" to measure again
CACHE_ENV = "DISTRL_CHOICE_CACHE"
REMEASURE_ENV = "DISTRL_REMEASURE"

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
    # On a CPU at one torch thread the process's CPU time: the update runs on this thread, and
    # other processes' load (a shared machine) stretches the wall-clock time of both modes
    # unevenly (on a loaded 2-core machine wall clock picked eager for the DER C51 update once
    # and compiled once; its CPU time: compiled 1.3x faster every time). With more threads the
    # wall clock, which is what the update's threads together take.
    one_thread_cpu = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.process_time if one_thread_cpu else time.perf_counter
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
            clock=clock,
        )
    return CompileChoice(choose(update_ms, margin), update_ms, compile_s, dropped)


def _median_ms(
    fns: dict[str, Callable[[], Any]],
    *,
    rounds: int,
    budget_s: float,
    sync: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median ms per call of each function on ``clock``, calling them in turn (one warm-up call
    each), so that load on a shared machine affects every candidate alike."""
    for fn in fns.values():
        fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    deadline = time.perf_counter() + budget_s
    for i in range(rounds):
        for key, fn in fns.items():
            start = clock()
            fn()
            sync()
            times[key].append((clock() - start) * 1e3)
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


# --------------------------------------------------------------------------- once per machine
def cache_path() -> Path:
    """The file that keeps measured choices (see the module docstring)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distrl_agents" / "startup_choices.json"


#: choices kept in this process where the cache file cannot be written
_MEMORY: dict[str, str] = {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``'s ``.lock`` file while the block runs (where ``fcntl``
    exists), so that concurrent jobs measure once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError):
        warnings.warn(f"{path}: unreadable start-up choice cache; measuring anew", stacklevel=3)
        return {}
    return data if isinstance(data, dict) else {}


def cached_mode(key: Mapping[str, Any], measure: Callable[[], CompileChoice]) -> str:
    """The compile mode measured for ``key`` on this machine: read from the cache file, or
    measured (under the file's lock), logged and stored there. ``DISTRL_REMEASURE=1`` measures
    again. Where the file cannot be written, the choice is kept for this process only, with a
    warning."""
    text = json.dumps(key, sort_keys=True, default=str)
    remeasure = os.environ.get(REMEASURE_ENV, "") not in ("", "0")
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            entries = _read(path)
            entry = entries.get(text)
            if isinstance(entry, dict) and entry.get("mode") and not remeasure:
                log(f"compile=auto: {entry['mode']} (measured on this machine before; {path}; "
                    f"{REMEASURE_ENV}=1 measures again)")  # fmt: skip
                return str(entry["mode"])
            choice = measure()
            log(choice.describe())
            entries[text] = {"mode": choice.mode, "measured": choice.describe(),
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, path)
            return choice.mode
    except OSError as exc:
        if text not in _MEMORY or remeasure:
            warnings.warn(
                f"compile=auto: cannot keep the choice in {path} ({exc}); it is measured once "
                f"per process instead (set {CACHE_ENV} to a writable file)",
                stacklevel=2,
            )
            choice = measure()
            log(choice.describe())
            _MEMORY[text] = choice.mode
        return _MEMORY[text]


def decide_compile(
    setting: str,
    measure: Callable[[], CompileChoice],
    *,
    key: Mapping[str, Any],
    recorded: str | None = None,
) -> str:
    """The run's compile mode: ``setting`` unless it is ``auto``; for ``auto`` the mode a
    resumed run's checkpoint ``recorded`` (chosen on this machine), else :func:`cached_mode`."""
    if setting != "auto":
        return setting
    if recorded is not None:
        log(f"compile=auto: {recorded} (as chosen when this run started on this machine)")
        return recorded
    return cached_mode(key, measure)
