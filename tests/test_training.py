"""The training run end to end on the real ALE: tags, checkpoints, resume, signals, determinism."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from distrl_agents.agents import AGENT_NAMES, agent_class
from distrl_agents.training import checkpoint as ckpt
from distrl_agents.training.config import ConfigError, RunConfig
from distrl_agents.training.loop import Trainer, TrainSummary
from distrl_agents.training.schedule import eval_env_seed, linear_epsilon

#: every registered agent, at its small test sizes (``Agent.test_sizes``).
AGENTS = list(AGENT_NAMES)
SMALL_HPARAMS = {name: dict(agent_class(name).test_sizes) for name in AGENTS}
DOCUMENTED_TAGS = {
    "charts/SPS",
    "charts/updates_per_second",
    "charts/epsilon",
    "charts/replay_size",
    "charts/learning_rate",
    "charts/longest_open_game",
    "losses/loss",
    "losses/q_mean",
    "eval/episodic_return",
    "eval/episodes",
}


def small_config(agent: str, protocol: str = "machado", **trainer) -> RunConfig:
    raw = {
        "agent": {"name": agent, **SMALL_HPARAMS.get(agent, {})},
        "network": {"torso": "nature", "hidden": 64},
        "env": {"game": "pong", "protocol": protocol, "num_envs": 2, "eval_num_envs": 1},
        "replay": {"capacity": 1000},
        "trainer": {
            "total_steps": 240,
            "learning_starts": 80,
            "target_update_period": 40,
            "epsilon_decay_steps": 100,
            "eval_period": 200,
            "eval_episodes": 1,
            "eval_steps": 60,
            "checkpoint_period": 120,
            "batch_size": 8,
            **trainer,
        },
        "logger": {"log_period": 40, "distribution_period": 100, "distribution_states": 1},
    }
    return RunConfig.from_dict(raw)


def train(cfg: RunConfig, run_dir: Path) -> tuple[Trainer, TrainSummary]:
    """Build a Trainer, run it to the end and close it."""
    trainer = Trainer(cfg, run_dir)
    summary = trainer.run()
    trainer.close()
    return trainer, summary


def scalar_tags(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.mark.parametrize("protocol", ["machado", "nature"])
@pytest.mark.parametrize("agent", AGENTS)
def test_short_run_writes_tags_and_checkpoint(agent: str, protocol: str, tmp_path: Path) -> None:
    _, summary = train(small_config(agent, protocol), tmp_path)
    assert summary.finished and summary.agent_step >= 240
    assert summary.num_updates == pytest.approx((summary.agent_step - 80) / 4, abs=2)
    tags = scalar_tags(tmp_path)
    assert DOCUMENTED_TAGS <= set(tags), DOCUMENTED_TAGS - set(tags)
    if agent == "fqf":
        assert "losses/fraction_entropy" in tags
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None and (last / ckpt.REPLAY_FILE).exists()
    state = ckpt.load_state(last)
    assert state["agent_step"] == summary.agent_step and state["agent"]["name"] == agent
    records = [json.loads(x) for x in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert records and records[0]["agent"] == agent and records[0]["game"] == "pong"
    assert json.loads((tmp_path / "config.json").read_text())["env"]["protocol"] == protocol


@pytest.mark.parametrize("overlap", [True, False])
def test_same_seed_gives_identical_losses(tmp_path: Path, overlap: bool) -> None:
    losses = []
    for name in ("a", "b"):
        cfg = small_config("qrdqn", eval_period=0, total_steps=200, overlap=overlap)
        train(cfg, tmp_path / name)
        losses.append(scalar_tags(tmp_path / name)["losses/loss"])
    assert len(losses[0]) >= 2
    assert losses[0] == losses[1]


def _child(run_dir: Path, total_steps: int, checkpoint_period: int) -> subprocess.Popen:
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r})\n"
        "from test_training import small_config\n"
        "from distrl_agents.training.loop import Trainer\n"
        f"cfg = small_config('c51', total_steps={total_steps}, "
        f"checkpoint_period={checkpoint_period}, eval_period=0)\n"
        f"t = Trainer(cfg, {str(run_dir)!r}); s = t.run(); t.close()\n"
        "print('STOPPED', s.stopped_by, s.agent_step, flush=True)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        text=True,
    )  # fmt: skip


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None:
            return found
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_resumes_from_last_checkpoint_with_continuing_counters(tmp_path: Path) -> None:
    proc = _child(tmp_path, total_steps=100_000, checkpoint_period=100)
    first = _wait_for_checkpoint(tmp_path, proc)
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None
    saved = ckpt.load_state(last)
    step = saved["agent_step"]
    updates = saved["agent"]["num_updates"]
    assert step >= int(first.name.split("_")[1])

    cfg = small_config("c51", total_steps=step + 200, checkpoint_period=100, eval_period=0)
    trainer = Trainer(cfg, tmp_path)
    assert trainer._resume_from == ckpt.latest_checkpoint(tmp_path)
    summary = trainer.run()
    trainer.close()
    assert summary.finished and summary.agent_step >= step + 200
    # Counters continue: updates keep the replay ratio from where the checkpoint left them.
    assert summary.num_updates == pytest.approx(updates + 200 / 4, abs=2)
    loss_steps = [s for s, _ in scalar_tags(tmp_path)["losses/loss"]]
    assert loss_steps == sorted(loss_steps) and len(set(loss_steps)) == len(loss_steps)


def test_checkpoint_minutes_writes_a_checkpoint_after_that_much_wall_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distrl_agents.training import loop

    cfg = small_config("c51", total_steps=240, checkpoint_period=0, checkpoint_minutes=1.0,
                       eval_period=0)  # fmt: skip
    trainer = Trainer(cfg, tmp_path)
    # A clock on which every agent step takes 0.6 s: one minute per 100 agent steps.
    monkeypatch.setattr(loop, "_now", lambda: 0.6 * trainer.agent_step)
    saved: list[int] = []
    save = trainer.save_checkpoint

    def counting_save() -> Path:
        saved.append(trainer.agent_step)
        return save()

    monkeypatch.setattr(trainer, "save_checkpoint", counting_save)
    trainer.run()
    trainer.close()
    assert saved == [100, 200, 240]  # a minute after the start, a minute later, the end
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None and ckpt.load_state(last)["agent_step"] == 240


def test_checkpoint_minutes_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.checkpoint_minutes must be >= 0"):
        small_config("c51", checkpoint_minutes=-1.0).validate()


def test_sigterm_writes_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    proc = _child(tmp_path, total_steps=100_000, checkpoint_period=100_000)
    deadline = time.time() + 120
    while not (tmp_path / "tb").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "STOPPED SIGTERM" in out
    stopped_at = int(out.split("STOPPED SIGTERM")[1].split()[0])
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None and ckpt.load_state(last)["agent_step"] == stopped_at


def test_incompatible_checkpoint_is_refused_and_left_intact(tmp_path: Path) -> None:
    train(small_config("c51", total_steps=120, eval_period=0), tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(
        ckpt.CheckpointError, match=r"other settings.*agent\.name: 'c51' -> 'qrdqn'"
    ):
        Trainer(small_config("qrdqn", total_steps=120), tmp_path)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    train(small_config("dqn", total_steps=120, eval_period=0), tmp_path)
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None
    state_file = last / ckpt.STATE_FILE
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="corrupt or truncated"):
        Trainer(small_config("dqn", total_steps=240), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="No checkpoint"):
        ckpt.find_checkpoint(tmp_path / "empty")
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.find_checkpoint(tmp_path / "nothing_here")


def test_corrupt_replay_in_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    train(small_config("c51", total_steps=120, eval_period=0), tmp_path)
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None
    replay_file = last / ckpt.REPLAY_FILE
    data = replay_file.read_bytes()
    replay_file.write_bytes(data[: len(data) // 3])
    resumed = Trainer(small_config("c51", total_steps=240, eval_period=0), tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="cannot be restored"):
        resumed.run()
    resumed.close()
    assert replay_file.read_bytes() == data[: len(data) // 3]  # left as it was


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.learning_starts"):
        small_config("c51", learning_starts=5000)
    with pytest.raises(ConfigError, match=r"trainer\.bogus"):
        small_config("c51", bogus=1)
    with pytest.raises(ConfigError, match=r"trainer\.precision"):
        small_config("c51", precision="fp8")
    with pytest.raises(ConfigError, match=r"trainer\.gamma"):
        small_config("c51", gamma=1.5)
    with pytest.raises(ConfigError, match=r"trainer\.compile"):
        small_config("c51", compile="fast")
    assert small_config("c51", compile=True).trainer.compile == "torso"
    assert small_config("c51", compile=False).trainer.compile == "off"
    assert small_config("c51", compile="graphs").trainer.compile == "graphs"


def test_run_level_settings_cannot_hide_in_the_agent_preset() -> None:
    cfg = small_config("c51")
    cfg.agent["precision"] = "bf16"
    with pytest.raises(ConfigError, match=r"trainer\.precision"):
        Trainer(cfg, "unused")


def test_each_evaluation_draws_fresh_env_seeds_from_run_seed_and_index(tmp_path: Path) -> None:
    seeds = {eval_env_seed(run, k) for run in (0, 1) for k in range(50)}
    assert len(seeds) == 100 and all(0 <= x < 2**30 for x in seeds)
    assert eval_env_seed(3, 7) == eval_env_seed(3, 7)  # a resumed run evaluates the same games
    cfg = small_config("dqn", "nature", eval_period=80, eval_steps=20, checkpoint_period=0)
    train(cfg, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert [r["eval_index"] for r in records] == [r["agent_step"] // 80 for r in records]
    assert len(records) >= 3
    assert [r["env_seed"] for r in records] == [
        eval_env_seed(cfg.seed, r["eval_index"]) for r in records
    ]
    assert len({r["env_seed"] for r in records}) == len(records)


def test_epsilon_schedule() -> None:
    epsilon = functools.partial(linear_epsilon, start=1.0, end=0.01, decay_steps=100, warmup=50)
    assert epsilon(0) == 1.0
    assert epsilon(50) == 1.0
    assert epsilon(100) == pytest.approx(0.505)
    assert epsilon(10_000) == pytest.approx(0.01)


@pytest.mark.parametrize("overlap", [True, False])
def test_replay_ratio_holds_for_many_envs(tmp_path: Path, overlap: bool) -> None:
    cfg = small_config("dqn", total_steps=400, eval_period=0, update_period=2.0, overlap=overlap)
    cfg.env.num_envs = 8
    trainer, summary = train(cfg, tmp_path)
    assert summary.num_updates == pytest.approx((summary.agent_step - 80) / 2, abs=8)
    assert torch.is_tensor(next(iter(trainer.agent.parameters())))


def test_precision_auto_and_fp32_both_train(tmp_path: Path) -> None:
    for precision in ("fp32", "auto"):
        cfg = small_config("c51", total_steps=160, eval_period=0, precision=precision)
        trainer, _ = train(cfg, tmp_path / precision)
        # auto is fp32 everywhere (docs/performance.md, "Precision"): bf16 only when named.
        assert trainer.agent.config.precision == "fp32"
        if precision == "fp32":
            assert not trainer.agent.config.channels_last


def test_risk_sensitive_runs_are_labelled_in_results(tmp_path: Path) -> None:
    cfg = small_config("qrdqn", total_steps=120, eval_period=100)
    cfg.agent.update(risk="cvar", risk_param=0.25)
    cfg.env.overrides = {"max_num_frames_per_episode": 200}
    train(cfg, tmp_path)
    record = json.loads((tmp_path / "evaluations.jsonl").read_text().splitlines()[0])
    assert record["agent"] == "qrdqn+cvar0.25" and record["risk"] == "cvar"
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None
    state = ckpt.load_state(last)
    assert state["config"]["agent"]["risk"] == "cvar"


def test_metric_window_sums_device_metrics_without_reading_each_update_back() -> None:
    from distrl_agents.training.metrics import MetricWindow
    from distrl_agents.types import LearnResult

    window = MetricWindow()
    names = ("loss", "q_mean")
    rows = [[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]]
    results = [
        LearnResult(torch.zeros(2), metric_names=names, metric_values=torch.tensor(r)) for r in rows
    ]
    for r in results:
        window.add(r)
    assert all(r._metrics is None for r in results)  # nothing was read back per update
    assert window.means() == pytest.approx({"loss": 3.0, "q_mean": 30.0})
    assert results[0].metrics == {"loss": 1.0, "q_mean": 10.0}  # read back on demand
    with pytest.raises(ValueError, match="metric_values has shape"):
        LearnResult(torch.zeros(2), metric_names=names, metric_values=torch.zeros(3))


def test_progress_bar_names_the_job(tmp_path: Path) -> None:
    cfg = small_config("c51", total_steps=10)
    settings = (
        tmp_path / "pong-c51-seed0" / "agent.lr=0.0001,env.overrides.max_num_frames_per_episode=400"
    )
    trainer = Trainer(cfg, settings)
    try:
        label = trainer._job_label()
    finally:
        trainer.close()
    assert label == f"{trainer.game} c51 seed0 " + settings.name  # in full, not truncated
    trainer = Trainer(cfg, tmp_path / "elsewhere")
    try:
        assert trainer._job_label() == f"{trainer.game} c51 seed0"
    finally:
        trainer.close()


def test_evaluation_cut_short_by_a_stop_signal_is_played_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM's time-limit signal during the evaluation at step 200: nothing is recorded for
    200 then; the resumed run plays that evaluation first, at step 200, so every period keeps
    its record."""
    from distrl_agents.training import periodic_eval

    cfg = small_config("c51", total_steps=400, eval_period=200, checkpoint_period=0)
    real_evaluate = periodic_eval.evaluate
    trainer = Trainer(cfg, tmp_path)

    def stopped_evaluate(*args, **kwargs):  # the signal arrives as the evaluation starts
        trainer._stop = int(signal.SIGUSR2)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(periodic_eval, "evaluate", stopped_evaluate)
    summary = trainer.run()
    trainer.close()
    assert summary.stopped_by == "SIGUSR2" and summary.agent_step == 200
    assert not (tmp_path / "evaluations.jsonl").exists()
    monkeypatch.setattr(periodic_eval, "evaluate", real_evaluate)
    trainer, summary = train(cfg, tmp_path)
    assert summary.finished
    steps = [
        json.loads(x)["agent_step"]
        for x in (tmp_path / "evaluations.jsonl").read_text().splitlines()
    ]
    assert steps == [200, 400]


def test_resume_keeps_the_scalars_logged_at_the_checkpoint_step(tmp_path: Path) -> None:
    """A run that stops at a log step (here: it ends there) logged that step before its
    checkpoint; resuming must not purge it (a requeue that landed on step 200 once lost
    every scalar of step 200)."""
    train(small_config("c51", total_steps=200, eval_period=0), tmp_path)
    assert 200 in [s for s, _ in scalar_tags(tmp_path)["charts/epsilon"]]
    train(small_config("c51", total_steps=280, eval_period=0), tmp_path)
    steps = [s for s, _ in scalar_tags(tmp_path)["charts/epsilon"]]
    assert steps == [40, 80, 120, 160, 200, 240, 280]


def test_longest_open_game_counts_the_unfinished_games():
    """``charts/longest_open_game``: agent steps of the longest game still running; reset steps
    do not count and a finished game starts again from 0 (a game that never ends shows here)."""
    from types import SimpleNamespace

    import numpy as np

    from distrl_agents.training.metrics import TrainingLog

    class Writer:
        def __init__(self) -> None:
            self.scalars: list[tuple[str, float, int]] = []

        def scalar(self, tag, value, step):
            self.scalars.append((tag, float(value), step))

    progress = SimpleNamespace(update=lambda n: None, set_postfix=lambda **k: None)
    writer = Writer()
    log = TrainingLog(writer, "pong", progress)
    agent = SimpleNamespace(config=SimpleNamespace(lr=1e-4))

    def step(autoreset, ended=None, returns=None):
        info = {"autoreset": np.array(autoreset)}
        if ended is not None:
            info["episode"] = {"r": np.array(returns, float), "l": np.array([0, 0])}
            info["_episode"] = np.array(ended)
        log.count(int((~info["autoreset"]).sum()), info, 0)

    def longest(at):
        log.write(at, epsilon=0.0, replay=[], agent=agent)
        return [v for tag, v, s in writer.scalars if tag == "charts/longest_open_game" and s == at]

    for _ in range(5):
        step([False, False])
    assert longest(1) == [5.0]
    step([False, False], ended=[True, False], returns=[-21.0, 0.0])  # env 0's game ends here
    step([True, False])  # env 0 resets: not an agent step
    step([False, False])
    assert longest(2) == [8.0]  # env 1: 8 steps into its game; env 0: 1 (its reset step is none)
    step([False, False], ended=[False, True], returns=[0.0, -20.0])
    assert longest(3) == [2.0]
    assert ("charts/episodic_return", -20.0, 0) in writer.scalars


@pytest.mark.parametrize("warmup_actions", ["uniform", "agent"])
def test_warmup_actions_choose_who_plays_the_warm_up(tmp_path: Path, warmup_actions: str) -> None:
    # atari100k_dopamine: the noisy network plays the warm-up at epsilon 0 (Dopamine's
    # zero_epsilon); every other preset: uniformly random actions, the agent is never asked.
    cfg = small_config(
        "c51",
        total_steps=60,
        learning_starts=80,
        eval_period=0,
        checkpoint_period=0,
        precision="fp32",
        epsilon_start=0.0,
        epsilon_end=0.0,
        epsilon_decay_steps=0,
        warmup_actions=warmup_actions,
    )
    trainer = Trainer(cfg, tmp_path)
    calls: list[float] = []
    act = trainer.agent.act

    def counting_act(obs, epsilon=0.0, *args, **kwargs):
        calls.append(epsilon)
        return act(obs, epsilon, *args, **kwargs)

    trainer.agent.act = counting_act  # type: ignore[method-assign]
    summary = trainer.run()
    trainer.close()
    assert summary.agent_step >= 60 and summary.num_updates == 0
    if warmup_actions == "uniform":
        assert calls == []
    else:
        assert len(calls) >= 30 and set(calls) == {0.0}


def test_warmup_actions_must_be_a_known_choice() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.warmup_actions"):
        small_config("dqn", warmup_actions="random").validate()


def test_evaluation_budget_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.eval_steps >= 1"):
        small_config("dqn", eval_episodes=0, eval_steps=0)
    with pytest.raises(ConfigError, match=r"trainer\.eval_episodes"):
        small_config("dqn", eval_episodes=-1)
    with pytest.raises(ConfigError, match=r"trainer\.eval_last_game"):
        small_config("dqn", eval_last_game="keep")
    assert small_config("dqn", eval_episodes=0, eval_steps=50).trainer.eval_episodes == 0
    assert (
        small_config("dqn", eval_episodes=0, eval_steps=0, eval_period=0).trainer.eval_period == 0
    )


def test_evaluation_passes_its_game_cap_budget_and_last_game_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distrl_agents.evaluation import EvalResult
    from distrl_agents.training import periodic_eval

    cfg = small_config(
        "dqn", eval_episodes=0, eval_steps=50, eval_last_game="finish", checkpoint_period=0
    )
    seen: dict = {}

    def fake_evaluate(act, env, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return EvalResult(game="pong", episode_returns=[1.0], episode_lengths=[7], agent_steps=8)

    monkeypatch.setattr(periodic_eval, "evaluate", fake_evaluate)
    trainer = Trainer(cfg, tmp_path)
    try:
        trainer.evaluate()
    finally:
        trainer.close()
    assert (seen["episodes"], seen["max_steps"], seen["last_game"]) == (0, 50, "finish")


def test_a_long_evaluation_game_during_training_gets_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from distrl_agents.training import periodic_eval

    cfg = small_config("dqn", total_steps=40, eval_period=0, checkpoint_period=0)
    trainer = Trainer(cfg, tmp_path)
    real_evaluate = periodic_eval.evaluate

    def evaluate_with_a_long_game(*args, **kwargs):
        kwargs["on_long_game"](1, 12_345)  # what evaluate() reports for an unusually long game
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(periodic_eval, "evaluate", evaluate_with_a_long_game)
    trainer.evaluate()
    trainer.close()
    err = capsys.readouterr().err
    assert "pong dqn seed0" in err and "eval: the game of evaluation env 1" in err
    assert "12,345 agent steps (49,380 frames) without ending" in err
    assert "the frame cap ends it at 108,000 frames (27,000 agent steps)" in err


def test_config_json_names_the_code_of_each_stretch_of_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distrl_agents import __version__
    from distrl_agents.training import run_dir as run_dir_module

    cfg = small_config("c51", total_steps=120, eval_period=0)
    train(cfg, tmp_path)
    first = json.loads((tmp_path / "config.json").read_text())["resolved"]["code"]
    assert len(first) == 1 and first[0]["version"] == __version__
    assert first[0]["from_agent_step"] == 0 and "commit" in first[0]
    # resumed by other code: a second entry from the step it resumed at
    other = {"version": "9.9.9", "commit": "f" * 40, "modified": False}
    monkeypatch.setattr(run_dir_module, "code_version", lambda: dict(other))
    cfg.trainer.total_steps = 160
    train(cfg, tmp_path)
    code = json.loads((tmp_path / "config.json").read_text())["resolved"]["code"]
    assert code[0] == first[0] and code[1] == {**other, "from_agent_step": 120}
    # resumed again by the same code: nothing added
    cfg.trainer.total_steps = 200
    train(cfg, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["resolved"]["code"] == code


def test_code_version_names_this_checkout_commit() -> None:
    import subprocess

    from distrl_agents.training.run_dir import code_version

    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert code_version()["commit"] == head.stdout.strip()


def test_the_code_record_does_not_label_runs_apart_in_reports(tmp_path: Path) -> None:
    from distrl_agents.evaluation.records import _run_settings

    config = {
        "agent": {"name": "c51", "lr": 0.001},
        "resolved": {"precision": {"update": "fp32"}, "code": [{"commit": "a" * 40}]},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    settings = _run_settings(tmp_path / "config.json")
    assert "agent.lr" in settings and "resolved.precision.update" in settings
    assert not any(k.startswith("resolved.code") for k in settings)
