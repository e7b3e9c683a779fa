"""Sweeps over many runs: per-job resources for local parallel sweeps, pre-emption on SLURM.

Three hooks, no-ops outside the sweeps that ask for them (see docs/sweeps.md):

* :func:`job_subdir` -- each sweep job's directory: ``<game>-<agent>-seed<seed>``, and below it
  one level naming the job's other settings from the command line (``agent.lr=0.0001``), so that
  two jobs of one sweep that differ in anything but the schedule and logging never share a
  directory (they would overwrite each other, or one would resume the other).

* :func:`assign_job_resources` -- local parallel sweeps (``hydra/launcher=local``, the joblib
  launcher) run ``n_jobs`` trainings side by side on one machine. The launcher config exports
  ``DISTRL_SWEEP_SLOTS`` (= ``n_jobs``) and ``DISTRL_SWEEP_LOCKS`` (a directory in the sweep
  directory) to every job. Each job then takes the lowest free *slot* ``0 .. n_jobs-1`` (an
  exclusive lock file held while the job runs; the OS drops it if the job dies) and gets, unless
  the command line chose them: ``trainer.torch_threads`` = its share of the CPUs and, on a
  machine with several GPUs, ``trainer.device = cuda:<slot % num_gpus>``. A slot, not the job
  number, so that two jobs running at the same time never share a GPU whatever order they
  finish in.
* :func:`requeue_if_preempted` -- SLURM sweeps (``hydra/launcher=slurm``, Hydra's submitit
  launcher). submitit asks SLURM for ``--signal=USR2@<signal_delay_s>`` and handles SIGUSR2 by
  re-submitting the job (``scontrol requeue``) and exiting at once. The Trainer takes the signal
  over while it trains (SIGUSR2 is one of its stop signals): it finishes the current step,
  writes a checkpoint and returns. This function then hands the signal to submitit's handler,
  which requeues the job; the requeued job runs the same Hydra job with the same run directory
  and resumes from that checkpoint.

This module does not import Hydra or submitit.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "JOB_DIR_RESOLVER",
    "LOCKS_ENV",
    "PREEMPT_SIGNAL_ENV",
    "SLOTS_ENV",
    "assign_job_resources",
    "in_submitit_job",
    "job_subdir",
    "names_a_run_setting",
    "preemption_signal",
    "requeue_if_preempted",
]

#: Number of jobs a local sweep runs at the same time (set by hydra/launcher/local.yaml).
SLOTS_ENV = "DISTRL_SWEEP_SLOTS"
#: Directory of the slot lock files (set by hydra/launcher/local.yaml).
LOCKS_ENV = "DISTRL_SWEEP_LOCKS"
#: submitit's own variable: the signal it asks SLURM for and handles (default USR2).
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"

_SLOT_WAIT_S = 60.0

#: The OmegaConf resolver that ``hydra.sweep.subdir`` (configs/train.yaml) calls.
JOB_DIR_RESOLVER = "distrl_job_dir"
#: Command-line settings left out of a job's directory name: already in ``<game>-<agent>-seed<seed>``,
#: or about the schedule, devices, evaluation cadence and logging rather than the run itself.
_NOT_IN_JOB_DIR = frozenset(
    {
        "agent", "env.game", "seed", "experiment", "name", "run_dir", "resume",
        "trainer.total_steps", "trainer.device", "trainer.torch_threads", "trainer.eval_period",
        "trainer.eval_episodes", "trainer.eval_steps", "trainer.eval_epsilon",
        "trainer.checkpoint_period", "trainer.save_replay", "logger",
    }
)  # fmt: skip
_NOT_IN_JOB_DIR_PREFIXES = ("hydra.", "hydra/", "logger.")
_MAX_NAME = 120  # longer override lists become a hash (the full settings are in config.json)


def job_subdir(game: str, agent: str, seed: Any, overrides: Any = ()) -> str:
    """A sweep job's directory below the sweep directory.

    ``overrides`` are the job's command-line overrides (``hydra.overrides.task``): those that
    set a run setting (:func:`names_a_run_setting`) name a second level, sorted and comma-joined
    (``agent.lr=0.0001,agent.risk=cvar``), or ``settings-<hash>`` when that would be longer than
    120 characters. Without such overrides the job directory is ``<game>-<agent>-seed<seed>``.
    """
    base = f"{game}-{agent}-seed{seed}"
    kept = []
    for item in overrides or ():
        text = str(item).lstrip("+~")
        if names_a_run_setting(text.split("=", 1)[0]):
            kept.append(text.replace("/", "_"))
    if not kept:
        return base
    name = ",".join(sorted(kept))
    if len(name) > _MAX_NAME:
        import hashlib

        name = "settings-" + hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{base}/{name}"


def names_a_run_setting(key: str) -> bool:
    """Whether a config key (``agent.lr``) sets what a run learns, as opposed to its identity
    (game, agent, seed, name), schedule, devices, evaluation cadence or logging. Job
    directories, and ``distrl-report``'s labels for runs that differ, are named after these."""
    return key not in _NOT_IN_JOB_DIR and not key.startswith(_NOT_IN_JOB_DIR_PREFIXES)


def register_job_dir_resolver() -> None:
    """Register :func:`job_subdir` with OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(JOB_DIR_RESOLVER):
        OmegaConf.register_new_resolver(JOB_DIR_RESOLVER, job_subdir)


_held_slot: IO[bytes] | None = None
_all_cpus: tuple[int, ...] | None = None


# ---------------------------------------------------------------------------------------------
# Local parallel sweeps
# ---------------------------------------------------------------------------------------------


def _available_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on, as first seen (a reused worker keeps the first answer)."""
    global _all_cpus
    if _all_cpus is None:
        try:
            _all_cpus = tuple(sorted(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            _all_cpus = tuple(range(os.cpu_count() or 1))
    return _all_cpus


def _num_slots(value: str) -> int:
    """``n_jobs`` as joblib reads it: ``-1`` = one per CPU, ``-2`` = all CPUs but one, ..."""
    n = int(value)
    if n < 0:
        n = len(_available_cpus()) + 1 + n
    return max(n, 1)


def _release_slot() -> None:
    global _held_slot
    if _held_slot is not None:
        _held_slot.close()  # closing the file drops its lock
        _held_slot = None


def acquire_slot(lock_dir: str | os.PathLike[str], num_slots: int) -> int:
    """Lock the lowest free slot ``0 .. num_slots-1`` of ``lock_dir`` and return it.

    The lock is held until the next call in this process (a reused worker starting its next
    job) or until the process exits. Raises ``TimeoutError`` when no slot frees up in a minute.
    """
    import fcntl

    _release_slot()
    global _held_slot
    directory = Path(lock_dir)
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _SLOT_WAIT_S
    while True:
        for slot in range(num_slots):
            f = (directory / f"slot-{slot}.lock").open("ab")
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            _held_slot = f
            return slot
        if time.monotonic() > deadline:
            raise TimeoutError(f"all {num_slots} slots in {directory} are taken")
        time.sleep(0.5)


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def assign_job_resources(
    trainer: dict[str, Any],
    environ: dict[str, str] | None = None,
    sweep_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Give this sweep job its own CPU threads and GPU; returns what was assigned.

    ``trainer`` is the ``trainer`` section of the job's config as a plain dict; it is updated in
    place. Only settings left at their defaults change: ``torch_threads: 0`` becomes
    ``cpus // n_jobs`` (at least 1) and ``device: auto`` (or ``cuda``) becomes
    ``cuda:<slot % num_gpus>`` when there are two GPUs or more. Nothing happens unless
    ``DISTRL_SWEEP_SLOTS`` is set (hydra/launcher=local or slurm sets it for each job). A
    relative ``DISTRL_SWEEP_LOCKS`` is taken relative to ``sweep_dir`` (the sweep directory).
    """
    env = os.environ if environ is None else environ
    if not env.get(SLOTS_ENV):
        return {}
    num_slots = _num_slots(env[SLOTS_ENV])
    slot = 0
    if num_slots > 1 and env.get(LOCKS_ENV):
        lock_dir = Path(env[LOCKS_ENV])
        if not lock_dir.is_absolute() and sweep_dir is not None:
            lock_dir = Path(sweep_dir) / lock_dir
        try:
            slot = acquire_slot(lock_dir, num_slots)
        except (OSError, TimeoutError) as exc:
            print(f"warning: no sweep slot ({exc}); keeping the default device", file=sys.stderr)
            num_slots = 1
    assigned: dict[str, Any] = {"slot": slot}
    if not trainer.get("torch_threads"):
        trainer["torch_threads"] = max(1, len(_available_cpus()) // num_slots)
        assigned["torch_threads"] = trainer["torch_threads"]
    if str(trainer.get("device", "auto")) in ("auto", "cuda"):
        num_gpus = _cuda_device_count()
        if num_gpus > 1:
            trainer["device"] = f"cuda:{slot % num_gpus}"
            assigned["device"] = trainer["device"]
    return assigned


# ---------------------------------------------------------------------------------------------
# SLURM pre-emption and time limits (submitit)
# ---------------------------------------------------------------------------------------------


def preemption_signal() -> signal.Signals:
    """The signal submitit handles as "pre-empted or timing out": SIGUSR2 unless
    ``SUBMITIT_PREEMPT_SIGNAL`` names another (e.g. ``USR1``)."""
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2").upper()
    return signal.Signals[name if name.startswith("SIG") else "SIG" + name]


def in_submitit_job() -> bool:
    """True inside a job started by submitit (it sets ``SUBMITIT_FOLDER`` before the job runs)."""
    return bool(os.environ.get("SUBMITIT_FOLDER"))


def requeue_if_preempted(stopped_by: str | None) -> bool:
    """After the Trainer stopped on submitit's pre-emption signal (its checkpoint is written),
    hand that signal to submitit, whose handler requeues the job and exits the process.

    Call it after ``Trainer.run()`` returned and the environments are closed, with
    ``summary.stopped_by``. Returns False (and does nothing) outside a submitit job, when the
    run was not stopped by that signal, or when no Python handler for it is installed.
    """
    if stopped_by is None or not in_submitit_job():
        return False
    sig = preemption_signal()
    if stopped_by != sig.name:
        return False
    handler = signal.getsignal(sig)
    if not callable(handler):
        return False
    print(f"{sig.name}: checkpoint written; handing over to submitit to requeue", file=sys.stderr)
    sys.stderr.flush()
    handler(int(sig), None)  # submitit: dump the job, `scontrol requeue`, sys.exit
    return True
