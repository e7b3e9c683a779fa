"""SLURM sweeps on a real cluster (``hydra/launcher=slurm``): a sweep read by distrl-report, a
job requeued by ``scontrol requeue`` and a job that reaches its time limit, each resuming from
its checkpoint in the same run directory.

Marked ``cluster`` (and ``slow``: minutes of SLURM scheduling): they need ``sbatch`` and a
running cluster, e.g. the one-node cluster of ``sudo bash scripts/slurm_local.sh``. CI starts
that cluster and runs ``python -m pytest -m cluster``. Where ``sbatch`` is absent they are
skipped, unless ``DISTRL_REQUIRE_CLUSTER=1`` (set by CI) turns the skip into a failure.
Jobs ask for one CPU, no GPU and 1 GB, in the cluster's default partition (or
``DISTRL_TEST_PARTITION``). The time-limit test raises a job's limit with ``scontrol update``,
which needs a SLURM administrator (root on the local cluster).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from distrl_agents.cli.report import report_main

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

if shutil.which("sbatch") is None:
    if os.environ.get("DISTRL_REQUIRE_CLUSTER") == "1":
        raise RuntimeError(
            "DISTRL_REQUIRE_CLUSTER=1 but SLURM's sbatch is not on PATH: start a cluster with "
            "`sudo bash scripts/slurm_local.sh` first"
        )
    pytest.skip(
        "SLURM's sbatch is not on PATH: start a one-node cluster with "
        "`sudo bash scripts/slurm_local.sh` to run the cluster tests",
        allow_module_level=True,
    )
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

# One CPU, no GPU, 1 GB per job; the smoke preset with games cut at 200 frames (50 agent
# steps) so that every evaluation finishes its games.
_LAUNCHER = [
    "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]  # fmt: skip
if os.environ.get("DISTRL_TEST_PARTITION"):
    _LAUNCHER.append(f"hydra.launcher.partition={os.environ['DISTRL_TEST_PARTITION']}")
_SMOKE = [
    "experiment=smoke", "env.overrides.max_num_frames_per_episode=200", "trainer.eval_steps=200",
    "trainer.learning_starts=100", "logger.progress=false", "logger.distribution_period=0",
]  # fmt: skip


def _sweep(tmp_path: Path, name: str, *args: str) -> subprocess.Popen[str]:
    """Start ``distrl-train -m`` (the launcher process waits for its jobs) in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "distrl_agents.train", "-m", *_LAUNCHER, *_SMOKE, f"name={name}", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float, name: str) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        subprocess.run(["scancel", "--name", f"distrl-{name}"], check=False)
        raise AssertionError(f"sweep still running after {timeout:.0f} s:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-4000:]
    return out


def _job(name: str) -> tuple[str, str] | None:
    """(job id, state) of this test's job in the queue, or None once it left the queue."""
    out = subprocess.run(
        ["squeue", "-h", "--name", f"distrl-{name}", "-o", "%i %T"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return (out[0], out[1]) if out else None


def _wait(what: str, condition, timeout: float, proc: subprocess.Popen[str]):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert proc.poll() is None, f"the sweep ended while waiting for {what}"
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _logs(sweep_dir: Path) -> str:
    """The job's stdout and stderr across its submissions (submitit appends to them)."""
    files = sorted((sweep_dir / ".submitit").glob("*/*_log.*"))
    return "".join(p.read_text() for p in files if p.suffix in (".out", ".err"))


def _scalars(run_dir: Path) -> dict[str, list[int]]:
    """Each TensorBoard scalar's steps as TensorBoard shows them (purged events dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _run_dir(sweep_dir: Path) -> Path:
    """The one run directory of a one-job sweep (``<game>-<agent>-seed<seed>/<settings>``)."""
    (config,) = sweep_dir.glob("pong-c51-seed0/*/config.json")
    return config.parent


def _check_resumed_run(run_dir: Path, total_steps: int, stopped_at: int) -> None:
    """Resumed from the checkpoint written at ``stopped_at``, finished at ``total_steps``, with
    one evaluation per period and every TensorBoard point once, as in a run never stopped."""
    evals = [json.loads(x) for x in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    steps = [r["agent_step"] for r in evals]
    assert steps == list(range(200, total_steps + 1, 200)), steps
    scalars = _scalars(run_dir)
    assert scalars
    for tag, tag_steps in scalars.items():
        if tag.startswith("charts/episodic_"):
            # One point per finished game: the smoke preset's 2 environments may both end a game
            # at the same step, never more (a resumed run that kept the first submission's
            # points after its checkpoint would show them twice).
            assert tag_steps == sorted(tag_steps), (tag, tag_steps)
            assert max(tag_steps.count(s) for s in tag_steps) <= 2, (tag, tag_steps)
        else:
            assert tag_steps == sorted(set(tag_steps)), (tag, tag_steps)
    # Every 100 steps (logger.log_period), each once, across the stop: the counters continued.
    assert scalars["charts/epsilon"] == list(range(100, total_steps + 1, 100)), stopped_at
    assert scalars["losses/loss"] == list(range(200, total_steps + 1, 100)), stopped_at


# ------------------------------------------------------------------------------ tests


def test_slurm_sweep_then_report(tmp_path: Path) -> None:
    """Two jobs (two seeds) through sbatch, the launcher waits for both, distrl-report reads
    the sweep directory."""
    name = f"cl{uuid.uuid4().hex[:8]}"
    proc = _sweep(
        tmp_path, name, "agent=c51", "env.game=pong", "seed=0,1",
        "trainer.total_steps=200", "trainer.eval_period=200", "trainer.checkpoint_period=0",
    )  # fmt: skip
    out = _finish(proc, 900, name)
    (sweep_dir,) = (tmp_path / "multirun" / name).iterdir()
    runs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == ["pong-c51-seed0", "pong-c51-seed1"], out[-2000:]
    assert len(list((sweep_dir / ".submitit").glob("*_[01]"))) == 2  # one array, two tasks
    logs = _logs(sweep_dir)
    assert logs.count("finished at agent step 200") == 2, logs[-3000:]
    report = tmp_path / "report"
    assert report_main([str(sweep_dir), "--out", str(report), "--reps", "50", "--no-plots"]) == 0
    table = (report / "per_game.csv").read_text()
    assert "pong" in table and "c51" in table, table


def test_scontrol_requeue_resumes_from_checkpoint(tmp_path: Path) -> None:
    """A running job requeued by the administrator (``scontrol requeue``: SIGTERM, then the
    job goes back to the queue) checkpoints, and the requeued job resumes in the same run
    directory; the launcher waits for the requeued job's result."""
    name = f"rq{uuid.uuid4().hex[:8]}"
    total = 600
    proc = _sweep(
        tmp_path, name, "agent=c51", "env.game=pong", "seed=0", f"trainer.total_steps={total}",
        "trainer.eval_period=200", "trainer.checkpoint_period=200",
    )  # fmt: skip
    sweep_root = tmp_path / "multirun" / name
    ckpts = lambda: sorted(sweep_root.glob("*/pong-c51-seed0/*/checkpoints/*"))  # noqa: E731
    _wait("the first checkpoint", ckpts, 600, proc)
    job = _job(name)
    assert job is not None and job[1] == "RUNNING", job
    subprocess.run(["scontrol", "requeue", job[0]], check=True)
    out = _finish(proc, 900, name)
    (sweep_dir,) = sweep_root.iterdir()
    logs = _logs(sweep_dir)
    stopped = re.search(r"stopped by SIGTERM at agent step ([\d,]+)", logs)
    assert stopped, logs[-3000:]
    stopped_at = int(stopped.group(1).replace(",", ""))
    assert 200 <= stopped_at < total
    assert "Resuming" in logs and f"finished at agent step {total:,}" in logs, logs[-3000:]
    assert "Training c51" in logs and logs.count("Training c51") == 1  # started once
    _check_resumed_run(_run_dir(sweep_dir), total, stopped_at)
    assert "Traceback" not in out, out[-3000:]


def _training_pids(sweep_dir: Path) -> list[int]:
    """The job's Python processes (submitit's ``_submit`` of this sweep), not srun's."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            proc.name.isdigit()
            and b"submitit.core._submit" in argv
            and str(sweep_dir).encode() in b" ".join(argv)
            and not argv[0].endswith(b"srun")
        ):
            pids.append(int(proc.name))
    return pids


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # it ended (the signal came just before the pause)
            pass


def _start_time(job_id: str) -> float:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%S"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return time.mktime(time.strptime(out, "%Y-%m-%dT%H:%M:%S"))


def test_time_limit_signal_checkpoints_and_requeues(tmp_path: Path) -> None:
    """A job that reaches its time limit (3 minutes) gets SIGUSR2 ``signal_delay_s`` = 90 s
    before it, writes a checkpoint, is requeued by submitit and finishes.

    So that the run cannot finish before its limit on a fast machine, nor take many limits on a
    slow one: once it has trained 200 steps (unless the signal came first), the test pauses the
    training process (SIGSTOP) until SLURM has sent the signal (SLURM checks time limits every
    30 s and signals up to 30 s early: 60 to 90 s after the start), then lets it go on
    (SIGCONT) with the signal pending; and the requeued job's limit is raised to 20 minutes so that it finishes
    whatever this machine's speed."""
    name = f"tl{uuid.uuid4().hex[:8]}"
    total = 400
    timeout_min, delay = 3, 90
    proc = _sweep(
        tmp_path, name, "agent=c51", "env.game=pong", "seed=0", f"trainer.total_steps={total}",
        "trainer.eval_period=200", "trainer.checkpoint_period=0",
        f"hydra.launcher.timeout_min={timeout_min}", f"hydra.launcher.signal_delay_s={delay}",
        "hydra.launcher.max_num_timeout=3",
    )  # fmt: skip
    sweep_root = tmp_path / "multirun" / name
    logs = lambda: "".join(_logs(d) for d in sweep_root.glob("*"))  # noqa: E731
    requeued = lambda: "handing over to submitit to requeue" in logs()  # noqa: E731
    evaluated = lambda: list(sweep_root.glob("*/pong-c51-seed0/*/evaluations.jsonl"))  # noqa: E731
    _wait("the first evaluation (step 200)", lambda: requeued() or evaluated(), 300, proc)
    (sweep_dir,) = sweep_root.iterdir()
    if not requeued():  # a fast machine: hold the run until the signal has come
        pids = _training_pids(sweep_dir)
        job = _job(name)
        assert pids and job is not None and job[1] == "RUNNING", (pids, job)
        started = _start_time(job[0])
        _signal_all(pids, signal.SIGSTOP)
        try:
            # SLURM checks time limits every 30 s and sends the warning at the first check
            # less than signal_delay_s + 30 s before the limit: by start + limit - delay.
            time.sleep(max(0.0, started + timeout_min * 60 - delay + 5 - time.time()))
        finally:
            _signal_all(pids, signal.SIGCONT)
    _wait("the requeue", lambda: "handing over to submitit to requeue" in logs(), 120, proc)
    job = _wait("the requeued job in the queue", lambda: _job(name), 60, proc)
    subprocess.run(["scontrol", "update", f"JobId={job[0]}", "TimeLimit=20"], check=True)
    _finish(proc, 1500, name)
    text = logs()
    stopped = re.search(r"stopped by SIGUSR2 at agent step ([\d,]+)", text)
    assert stopped, text[-3000:]
    stopped_at = int(stopped.group(1).replace(",", ""))
    assert "this job is timed-out" in text, text[-3000:]  # submitit: a time limit, not pre-emption
    assert "Resuming" in text and f"finished at agent step {total:,}" in text, text[-3000:]
    _check_resumed_run(_run_dir(sweep_dir), total, stopped_at)
