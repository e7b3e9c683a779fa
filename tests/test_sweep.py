"""Sweeps: a real local multirun read by distrl-report, the launcher and sweep-list presets,
per-job resources, and the pre-emption path (checkpoint first, then submitit's requeue)."""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from distrl_agents.cli.report import report_main
from distrl_agents.envs.games import ATARI57, ATARI100K
from distrl_agents.training import sweep

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def _compose(*overrides: str) -> Any:
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def _train(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distrl_agents.train", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# ------------------------------------------------------------------------------ a real sweep


def test_local_multirun_then_report(tmp_path: Path) -> None:
    """Two games x two seeds with the local launcher (2 jobs at a time), then distrl-report on
    the sweep directory as the sweep left it."""
    r = _train(
        "-m", "experiment=smoke", "agent=c51", "env.game=pong,breakout", "seed=0,1",
        "hydra/launcher=local", "hydra.launcher.n_jobs=2",
        "trainer.total_steps=300", "trainer.learning_starts=100", "trainer.eval_period=300",
        # Games cut at 200 frames, so that each evaluation finishes its 2 games.
        "env.overrides.max_num_frames_per_episode=200", "trainer.eval_episodes=2",
        "trainer.eval_steps=300", "trainer.checkpoint_period=0",
        "logger.progress=false", "logger.tensorboard=false", "logger.distribution_period=0",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    sweeps = list((tmp_path / "multirun" / "smoke").iterdir())
    assert len(sweeps) == 1, sweeps
    sweep_dir = sweeps[0]
    runs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == [f"{g}-c51-seed{s}" for g in ("breakout", "pong") for s in (0, 1)]
    assert (sweep_dir / ".slots").is_dir()  # one slot directory shared by the sweep's jobs
    # The command line's other run settings name the level below (schedule/logging ones do not).
    settings = "env.overrides.max_num_frames_per_episode=200,trainer.learning_starts=100"
    for name in runs:
        assert [p.name for p in (sweep_dir / name).iterdir()] == [settings]
        run_dir = sweep_dir / name / settings
        records = [json.loads(x) for x in (run_dir / "evaluations.jsonl").read_text().splitlines()]
        assert records and records[-1]["agent_step"] == 300
        assert len(records[-1]["episode_returns"]) == 2
        game, _, seed = name.split("-")
        assert records[-1]["game"] == game and records[-1]["seed"] == int(seed[4:])
        assert (run_dir / "config.json").is_file() and (run_dir / "checkpoints").is_dir()
    out = tmp_path / "report"
    assert report_main([str(sweep_dir), "--out", str(out), "--reps", "50", "--no-plots"]) == 0
    written = {p.name for p in out.iterdir()}
    assert written, "distrl-report wrote nothing"
    text = "".join(p.read_text() for p in out.iterdir() if p.suffix in (".md", ".csv"))
    for game in ("pong", "breakout"):
        assert game in text


def test_a_sweep_over_any_setting_gives_each_job_its_own_directory(tmp_path: Path) -> None:
    """agent.lr=a,b used to put both jobs in pong-c51-seed0: the second resumed the first."""
    r = _train(
        "-m", "experiment=smoke", "env.game=pong", "agent.lr=0.001,0.0001",
        "trainer.total_steps=40", "trainer.eval_period=0", "trainer.checkpoint_period=0",
        "logger.progress=false", "logger.tensorboard=false", "logger.distribution_period=0",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Resuming" not in r.stderr
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    jobs = sorted(p.relative_to(sweep_dir).as_posix() for p in sweep_dir.glob("*/*") if p.is_dir())
    assert jobs == ["pong-c51-seed0/agent.lr=0.0001", "pong-c51-seed0/agent.lr=0.001"]
    for job in jobs:
        saved = json.loads((sweep_dir / job / "config.json").read_text())
        assert saved["agent"]["lr"] == float(job.split("=")[-1])


def test_job_subdir_names() -> None:
    assert sweep.job_subdir("pong", "c51", 0, []) == "pong-c51-seed0"
    overrides = [
        "agent=iqn", "env.game=pong", "seed=2", "experiment=smoke", "trainer.total_steps=9",
        "trainer.device=cuda:1", "logger.progress=false", "hydra.launcher.n_jobs=2",
        "+agent.risk=cvar", "agent.risk_param=0.25", "++trainer.gamma=0.98", "network=impala",
    ]  # fmt: skip
    assert (
        sweep.job_subdir("pong", "iqn", 2, overrides)
        == "pong-iqn-seed2/agent.risk=cvar,agent.risk_param=0.25,network=impala,trainer.gamma=0.98"
    )
    long = sweep.job_subdir("pong", "c51", 0, [f"agent.lr={i}e-5" for i in range(40)])
    assert long.startswith("pong-c51-seed0/settings-") and len(long.split("/")[1]) == 19
    assert sweep.job_subdir("pong", "c51", 0, ["env.overrides.path=a/b"]).count("/") == 1


# ------------------------------------------------------------------------------ configs


def test_local_launcher_composes() -> None:
    cfg = _compose("hydra/launcher=local", "hydra.launcher.n_jobs=3")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 3
    env_set = OmegaConf.to_container(cfg.hydra.job.env_set, resolve=False)
    assert isinstance(env_set, dict)
    assert env_set[sweep.SLOTS_ENV] == "${hydra.launcher.n_jobs}"
    assert env_set[sweep.LOCKS_ENV] == ".slots"  # relative to the sweep directory


def test_slurm_launcher_composes_and_asks_for_the_preemption_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _compose("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "experiment=smoke")
    # A config node: a mapping with string keys.
    launcher = cast(dict[str, Any], OmegaConf.to_container(cfg.hydra.launcher, resolve=True))
    assert isinstance(launcher, dict)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["gpus_per_node"] == 1 and launcher["cpus_per_task"] >= 1
    assert launcher["max_num_timeout"] > 0 and launcher["signal_delay_s"] >= 60
    assert launcher["array_parallelism"] >= 1 and launcher["timeout_min"] >= 60
    assert launcher["name"] == "distrl-smoke"
    assert launcher["submitit_folder"].startswith("multirun/smoke/")
    # The sbatch script submitit writes from these settings, built as the launcher builds its
    # executor (nothing is submitted).
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    base = set(OmegaConf.structured(BaseQueueConf).keys())
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=tmp_path, slurm_max_num_timeout=launcher["max_num_timeout"]
    )
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in launcher.items()
            if k not in ("_target_", "submitit_folder", "max_num_timeout")
        }
    )
    assert isinstance(executor._executor, submitit.SlurmExecutor)
    text = executor._executor._make_submission_file_text("true", "uid")
    assert f"#SBATCH --signal=USR2@{launcher['signal_delay_s']}" in text
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --gpus-per-node=1" in text
    assert sweep.preemption_signal() == signal.SIGUSR2


def _sweep_games(experiment: str) -> tuple[str, ...]:
    cfg = _compose(f"experiment={experiment}")
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    return tuple(g.strip() for g in str(cfg.hydra.sweeper.params["env.game"]).split(","))


def test_benchmark_sweep_presets_match_the_game_tables() -> None:
    assert _sweep_games("sweep_atari57") == ATARI57
    assert _sweep_games("sweep_atari100k") == ATARI100K
    cfg = _compose("experiment=sweep_atari100k")
    assert cfg.name == "atari100k" and cfg.trainer.total_steps == 100_000
    # The game lists also combine with any other preset.
    cfg = _compose("hydra/sweeper=atari57", "experiment=iqn_paper")
    assert cfg.agent.name == "iqn" and len(cfg.hydra.sweeper.params["env.game"].split(",")) == 57


# ------------------------------------------------------------------------------ resources


def test_job_resources_take_a_free_slot(tmp_path: Path) -> None:
    env = {sweep.SLOTS_ENV: "2", sweep.LOCKS_ENV: str(tmp_path / ".slots")}
    cpus = len(os.sched_getaffinity(0))
    trainer: dict[str, Any] = {"device": "cpu", "torch_threads": 0}
    assert sweep.assign_job_resources(trainer, env)["slot"] == 0
    assert trainer == {"device": "cpu", "torch_threads": max(1, cpus // 2)}
    # Another job holds slot 0 (this one's lock is released when it takes its next slot).
    sweep._release_slot()
    (tmp_path / ".slots").mkdir(exist_ok=True)
    with (tmp_path / ".slots" / "slot-0.lock").open("ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        trainer = {"device": "auto", "torch_threads": 3}
        assert sweep.assign_job_resources(trainer, env)["slot"] == 1
        assert trainer["torch_threads"] == 3  # set on the command line: kept
    sweep._release_slot()
    assert sweep.assign_job_resources({}, {}) == {}  # not a sweep: nothing changes
    # The launcher config gives the lock directory relative to the sweep directory.
    relative = {sweep.SLOTS_ENV: "2", sweep.LOCKS_ENV: ".locks"}
    assert sweep.assign_job_resources({}, relative, sweep_dir=tmp_path)["slot"] == 0
    assert (tmp_path / ".locks" / "slot-0.lock").is_file()
    sweep._release_slot()


# ------------------------------------------------------------------------------ pre-emption


def test_preemption_signal_checkpoints_then_hands_over_to_submitit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path a SLURM time limit takes: SIGUSR2 reaches the Trainer (one of its stop signals),
    which writes a checkpoint and returns; submitit's handler (a stand-in here) is then called
    to requeue; the requeued job resumes from the checkpoint in the same run directory."""
    from distrl_agents.training import loop
    from distrl_agents.training.checkpoint import latest_checkpoint
    from distrl_agents.training.config import RunConfig
    from distrl_agents.training.signals import STOP_SIGNALS

    assert signal.SIGUSR2 in STOP_SIGNALS
    monkeypatch.setenv("SUBMITIT_FOLDER", str(tmp_path / ".submitit"))
    monkeypatch.delenv(sweep.PREEMPT_SIGNAL_ENV, raising=False)
    raw = cast(dict[str, Any], OmegaConf.to_container(
        _compose(
            "experiment=smoke", "env.game=pong", "trainer.total_steps=400",
            "trainer.learning_starts=100", "trainer.eval_period=200", "trainer.eval_episodes=1",
            "trainer.eval_steps=50", "trainer.checkpoint_period=0", "logger.progress=false",
            "logger.tensorboard=false", "logger.distribution_period=0",
        ),
        resolve=True,
    ))  # fmt: skip
    assert isinstance(raw, dict)
    raw.pop("hydra")
    raw.pop("resume", None)
    cfg = RunConfig.from_dict(raw)
    run_dir = tmp_path / "run"
    requeued: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: requeued.append(signum))
    try:
        trainer = loop.Trainer(cfg, run_dir)
        evaluate = trainer.evaluate

        def evaluate_then_preempt() -> Any:
            result = evaluate()
            os.kill(os.getpid(), signal.SIGUSR2)  # SLURM's signal, mid-run
            return result

        trainer.evaluate = evaluate_then_preempt  # type: ignore[method-assign]
        try:
            summary = trainer.run()
        finally:
            trainer.close()
        assert summary.stopped_by == "SIGUSR2" and not summary.finished
        assert requeued == []  # the Trainer had the signal while training
        checkpoint = latest_checkpoint(run_dir)
        assert checkpoint is not None and checkpoint.name.endswith(f"{summary.agent_step:012d}")
        assert sweep.requeue_if_preempted(summary.stopped_by)
        assert requeued == [signal.SIGUSR2]
        assert not sweep.requeue_if_preempted("SIGTERM")  # scancel: no requeue
    finally:
        signal.signal(signal.SIGUSR2, previous)
    # The requeued job: same config, same run directory -> resumes and finishes.
    trainer = loop.Trainer(cfg, run_dir)
    try:
        assert trainer._resume_from == checkpoint
        final = trainer.run()
    finally:
        trainer.close()
    assert final.finished and final.agent_step >= 400


def _integrated() -> bool:
    from distrl_agents.cli import train as cli
    from distrl_agents.training.signals import STOP_SIGNALS

    return signal.SIGUSR2 in STOP_SIGNALS and "requeue_if_preempted" in inspect.getsource(cli)


def _submitit_tasks(folder: Path) -> list[int]:
    """Pids of the submitit job processes (``-m submitit.core._submit <folder>/...``) under
    ``folder``: only processes this test started."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "submitit.core._submit" in cmdline and any(str(folder) in a for a in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(
    not _integrated(), reason="training/signals.py/cli/train.py do not route SIGUSR2"
)
def test_submitit_preemption_requeues_and_resumes(tmp_path: Path) -> None:
    """End to end with submitit's local executor, which plays SLURM: once the run is training,
    the job gets submitit's pre-emption signal; it checkpoints, submitit requeues it, and the
    requeued job resumes in the same run directory and finishes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrl_agents.train", "-m", "experiment=smoke", "env.game=pong",
         "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30",
         "+hydra.launcher.max_num_timeout=2", "trainer.total_steps=400",
         "trainer.learning_starts=100", "trainer.eval_period=100", "trainer.eval_episodes=1",
         "trainer.eval_steps=20", "trainer.checkpoint_period=0", "logger.progress=false",
         "logger.tensorboard=false", "logger.distribution_period=0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        # The first evaluation record: the Trainer is in its loop (its handlers are installed).
        job = "pong-c51-seed0/trainer.learning_starts=100"
        while not list(tmp_path.glob(f"multirun/smoke/*/{job}/evaluations.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.2)
        (task,) = _submitit_tasks(tmp_path)
        os.kill(task, signal.SIGUSR2)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").rglob("*.err"))
    assert "SIGUSR2 received at agent step" in logs
    assert "checkpoint written; handing over to submitit" in logs
    assert "this job is preempted" in logs
    assert "Resuming " in logs and "finished at agent step 400" in logs
    run_dir = sweep_dir / job
    records = [json.loads(x) for x in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert records[-1]["agent_step"] == 400


# ------------------------------------------------------------------------------ SLURM settings

_GOOD = {
    "timeout_min": 1440, "signal_delay_s": 600, "max_num_timeout": 30, "array_parallelism": 64,
    "cpus_per_task": 8, "gpus_per_node": 1, "mem_gb": 64, "nodes": 1, "tasks_per_node": 1,
}  # fmt: skip


def _sinfo(*args: str) -> list[str]:
    """A cluster with a default CPU partition and a GPU partition."""
    if args[:2] == ("-o", "%P"):
        return ["cpu*", "gpu"]
    return ["gpu:4"] if args[-1:] == ("gpu",) else ["(null)"]


def _problems(**changes: Any) -> list[str]:
    return sweep.check_slurm_launcher(
        {**_GOOD, "partition": "gpu", **changes}, which=lambda _: "/usr/bin/x", sinfo=_sinfo
    )


def test_slurm_settings_check() -> None:
    assert _problems() == []
    # The default 600 s warning with a 10-minute limit: signalled at the start, forever.
    (msg,) = _problems(timeout_min=10)
    assert "hydra.launcher.signal_delay_s=600" in msg and "hydra.launcher.timeout_min=10" in msg
    assert _problems(timeout_min=10, signal_delay_s=120) == []
    assert len(_problems(timeout_min=5, signal_delay_s=300)) == 1  # equal: no time at all
    assert _problems(timeout_min=1, signal_delay_s=59) == []
    for key, bad in [
        ("timeout_min", 0), ("timeout_min", "1h"), ("signal_delay_s", -1),
        ("max_num_timeout", -1), ("array_parallelism", 0), ("cpus_per_task", 0),
        ("gpus_per_node", -1), ("mem_gb", 0), ("mem_gb", True), ("nodes", 2),
        ("tasks_per_node", 4),
    ]:  # fmt: skip
        problems = _problems(**{key: bad})
        assert problems and f"hydra.launcher.{key}={bad}" in problems[0], (key, problems)
    assert _problems(mem_gb=None, cpus_per_task=None, gpus_per_node=None) == []
    (msg,) = sweep.check_slurm_launcher(_GOOD, which=lambda _: None)
    assert "sbatch" in msg and "scripts/slurm_local.sh" in msg
    # The partition is checked against sinfo: it exists, and has GPUs when asked for.
    (msg,) = _problems(partition="gpus")
    assert "hydra.launcher.partition=gpus" in msg and "cpu*, gpu" in msg
    (msg,) = _problems(partition="cpu")
    assert "hydra.launcher.gpus_per_node=1" in msg and "gpus_per_node=0" in msg
    assert len(_problems(partition=None)) == 1  # the default partition (cpu) has no GPUs
    assert _problems(partition="cpu", gpus_per_node=0) == []
    assert sweep.check_slurm_launcher(_GOOD, which=lambda _: "/x", sinfo=lambda *a: None) == []


def test_bad_slurm_settings_stop_the_sweep_before_submitting(tmp_path: Path) -> None:
    r = _train(
        "-m", "experiment=smoke", "seed=0,1", "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=10", "hydra.launcher.tasks_per_node=2",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "hydra.launcher.signal_delay_s=600" in r.stderr and "tasks_per_node=2" in r.stderr
    assert "Nothing was submitted" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "multirun").exists()


def test_a_sigterm_stopped_slurm_job_leaves_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """scancel / scontrol requeue: the job must not report the unfinished run as done."""
    monkeypatch.delenv("SUBMITIT_FOLDER", raising=False)
    sweep.leave_job_unfinished("SIGTERM")  # not a submitit job: nothing happens
    monkeypatch.setenv("SUBMITIT_FOLDER", "/nonexistent")
    sweep.leave_job_unfinished(None)  # finished run: returns normally
    with pytest.raises(SystemExit) as exc:
        sweep.leave_job_unfinished("SIGTERM")
    assert exc.value.code == 128 + signal.SIGTERM
    assert not isinstance(exc.value, Exception)  # passes submitit's `except Exception`
