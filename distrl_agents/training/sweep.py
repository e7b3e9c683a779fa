"""Sweeps over many runs: per-job resources for local parallel sweeps, pre-emption on SLURM.

Hooks, no-ops outside the sweeps that ask for them (see docs/sweeps.md):

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
  and resumes from that checkpoint. A run stopped by SIGTERM in a SLURM job (``scancel``,
  ``scontrol requeue``, pre-emption) leaves the job without a result
  (:func:`leave_job_unfinished`), so that the launcher waits for the requeued job rather than
  taking the unfinished run for a finished one.
* :func:`check_slurm_launcher` -- the SLURM launcher's settings, checked before anything is
  submitted (``distrl_agents.cli.train.SlurmLauncherCheck``, a Hydra callback in
  hydra/launcher/slurm.yaml).

This module does not import Hydra or submitit.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from distrl_agents.run_settings import names_a_run_setting

__all__ = [
    "LOCKS_ENV",
    "PREEMPT_SIGNAL_ENV",
    "SLOTS_ENV",
    "assign_job_resources",
    "check_slurm_launcher",
    "in_submitit_job",
    "job_subdir",
    "leave_job_unfinished",
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

_MAX_NAME = 120  # longer override lists become a hash (the full settings are in config.json)


def job_subdir(game: str, agent: str, seed: Any, overrides: Any = ()) -> str:
    """A sweep job's directory below the sweep directory.

    ``overrides`` are the job's command-line overrides (``hydra.overrides.task``): those that
    set a run setting (:func:`distrl_agents.run_settings.names_a_run_setting`) name a second
    level, sorted and comma-joined (``agent.lr=0.0001,agent.risk=cvar``), or
    ``settings-<hash>`` when that would be longer than 120 characters. Without such overrides the job directory is ``<game>-<agent>-seed<seed>``.
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


def leave_job_unfinished(stopped_by: str | None) -> None:
    """In a submitit job, end a run that a signal stopped before its end without a result.

    submitit reports a job as done once it has written a result, and takes a task that returns
    for a finished one. A run stopped by SIGTERM (``scancel``, ``scontrol requeue``, a
    pre-emption that requeues) has only written its checkpoint: exiting here, without a result,
    keeps the launcher waiting for the requeued job, which resumes the run from that checkpoint
    and reports when it really ends (a cancelled job shows as CANCELLED where SLURM keeps
    accounting). Does nothing outside a submitit job or when the run was not stopped.
    """
    if stopped_by is None or not in_submitit_job():
        return
    print(
        f"{stopped_by}: checkpoint written; the run is not finished, so this SLURM job ends "
        "without a result (a requeued job resumes it)",
        file=sys.stderr,
    )
    sys.stderr.flush()
    try:
        code = 128 + int(signal.Signals[stopped_by])
    except KeyError:
        code = 1
    # SystemExit passes through Hydra's and submitit's `except Exception`: no result is written.
    raise SystemExit(code)


# ---------------------------------------------------------------------------------------------
# SLURM launcher settings
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _suggested_delay(timeout_min: int) -> int:
    """A warning time that leaves most of the limit for training: 600 s, at most a fifth."""
    return max(min(600, timeout_min * 12), 1)


def _sinfo(*args: str) -> list[str] | None:
    """Lines of ``sinfo -h <args>``, or None when sinfo fails (no controller reachable)."""
    import subprocess

    try:
        out = subprocess.run(
            ["sinfo", "-h", *args], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


#: The prefix of the SLURM launcher's settings in messages.
_KEY = "hydra.launcher."


def _check_partition(
    launcher: Mapping[str, Any], sinfo: Callable[..., list[str] | None]
) -> list[str]:
    """The partition exists, and has GPUs when the jobs ask for them (as the cluster's sinfo
    says; nothing is reported when sinfo cannot answer)."""
    key = _KEY
    partitions = sinfo("-o", "%P")
    if partitions is None:
        return []
    names = [p.rstrip("*") for p in partitions]
    partition = launcher.get("partition")
    if partition is not None and str(partition) not in names:
        return [
            f"{key}partition={partition}: no such partition on this cluster (sinfo lists "
            f"{', '.join(partitions) or 'none'}; * marks the default)."
        ]
    gpus = launcher.get("gpus_per_node")
    if isinstance(gpus, int) and gpus > 0:
        where = ["-p", str(partition)] if partition is not None else []
        gres = sinfo("-o", "%G", *where)
        if gres is not None and not any("gpu" in g for g in gres):
            target = f"partition {partition}" if partition is not None else "the default partition"
            return [
                f"{key}gpus_per_node={gpus}: {target} has no GPUs (sinfo's GRES column: "
                f"{', '.join(gres) or 'empty'}). Choose a GPU partition with {key}partition=..., "
                f"or set {key}gpus_per_node=0 to train on CPUs."
            ]
    return []


def check_slurm_launcher(
    launcher: Mapping[str, Any],
    which: Callable[[str], str | None] = shutil.which,
    sinfo: Callable[..., list[str] | None] = _sinfo,
) -> list[str]:
    """Problems with the SLURM launcher's settings (``hydra.launcher``), one message each;
    empty when it may submit. Each message names the ``hydra.launcher.<key>`` fields involved.
    Where SLURM's ``sinfo`` answers, the partition must exist and, for jobs asking for GPUs,
    have some.

    The time limit must leave the job time to train before SLURM's warning signal: with
    ``signal_delay_s`` at or above ``timeout_min`` minutes the job is signalled as it starts,
    and each submission checkpoints and requeues after a few steps, until ``max_num_timeout``
    runs out. (``distrl_agents.cli.train.SlurmLauncherCheck`` also warns when the signal would
    come in the first half of the time limit.)
    """
    problems: list[str] = []
    if which("sbatch") is None:
        problems.append(
            "hydra/launcher=slurm submits with SLURM's sbatch, which is not on this machine's "
            "PATH. Run the sweep on a cluster's login node, or start a one-node cluster here "
            "with `sudo bash scripts/slurm_local.sh` (or use hydra/launcher=local)."
        )
    problems += _check_launcher_numbers(launcher)
    if which("sbatch") is not None and which("sinfo") is not None:
        problems += _check_partition(launcher, sinfo)
    for name in ("nodes", "tasks_per_node"):
        value = launcher.get(name, 1)
        if value != 1:
            problems.append(
                f"{_KEY}{name}={value}: must be 1. A training run is one process on one node; "
                "more tasks would run the same training several times in one run directory. "
                "Sweep values (seed=0,1,2) to run more trainings."
            )
    return problems


def _check_launcher_numbers(launcher: Mapping[str, Any]) -> list[str]:
    """Problems with the launcher's counts, time limit and signal delay, and memory."""
    key = _KEY
    problems: list[str] = []

    def count(name: str, minimum: int, nullable: bool = False, what: str = "") -> Any:
        value = launcher.get(name)
        if value is None and nullable:
            return None
        if not (isinstance(value, int) and _is_int(value) and value >= minimum):
            problems.append(f"{key}{name}={value}: must be a whole number >= {minimum}{what}.")
            return None
        return value

    timeout_min = count("timeout_min", 1, what=" (minutes per submission)")
    delay = count("signal_delay_s", 0, what=" (seconds of warning before the time limit)")
    if timeout_min is not None and delay is not None and delay >= timeout_min * 60:
        problems.append(
            f"{key}signal_delay_s={delay} is not shorter than {key}timeout_min={timeout_min} "
            f"({timeout_min * 60} s): SLURM sends its time-limit signal signal_delay_s before "
            "the limit, i.e. as the job starts, and every submission would checkpoint and "
            "requeue after a few steps. Set signal_delay_s well below the limit (e.g. "
            f"signal_delay_s={_suggested_delay(timeout_min)}) or raise timeout_min."
        )
    count("max_num_timeout", 0, what=" (requeues after time limits)")
    count("array_parallelism", 1, nullable=True, what=" (array tasks running at once)")
    count("cpus_per_task", 1, nullable=True)
    count("gpus_per_node", 0, nullable=True)
    mem = launcher.get("mem_gb")
    if mem is not None and (isinstance(mem, bool) or not isinstance(mem, int | float) or mem <= 0):
        problems.append(f"{key}mem_gb={mem}: must be a positive number of GB (or null).")
    return problems
