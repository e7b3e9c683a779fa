"""The training's progress bar and its printed evaluation lines (``training/metrics.py``)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
from tqdm import tqdm

from distrl_agents.evaluation.evaluator import EvalResult
from distrl_agents.monitoring import MetricWriter
from distrl_agents.training import metrics
from distrl_agents.training.metrics import TrainingLog, eval_line


def _bar(total: int, initial: int = 0) -> tqdm:
    return tqdm(total=total, initial=initial, file=io.StringIO(), mininterval=0, disable=False)


def _info(num_envs: int) -> dict:
    return {"autoreset": np.zeros(num_envs, dtype=bool)}


def test_the_bar_never_counts_past_its_total() -> None:
    """Two games stepped together over a 601-step total (``601step`` on a 600-step run)."""
    bar = _bar(600)
    log = TrainingLog(MetricWriter(None), "pong", bar)  # a disabled writer
    for step in range(2, 602, 2):
        log.count(2, _info(2), step)
    log.count(2, _info(2), 603)  # the loop's last step may overshoot total_steps
    assert bar.n == 600
    assert log.window_steps == 602  # the speed still counts every step taken
    bar.close()


def test_a_resumed_run_shows_its_speed_before_the_first_log_point(monkeypatch) -> None:
    """The postfix came only with the first log point after a resume (a whole log period)."""
    bar = _bar(10_000, initial=5_000)
    log = TrainingLog(MetricWriter(None), "pong", bar)  # a disabled writer
    log.count(2, _info(2), 5_002)
    assert bar.postfix in (None, "")  # not yet: refreshed every POSTFIX_SECONDS
    monkeypatch.setattr(metrics, "POSTFIX_SECONDS", 0.0)
    log._postfix_at = 0.0
    log.count(2, _info(2), 5_004)
    assert "sps=" in bar.postfix and "ret=nan" in bar.postfix and "eps" not in bar.postfix
    log.write(5_004, epsilon=0.01, replay=[], agent=_agent())
    log.count(2, _info(2), 5_006)
    assert "eps=0.010" in bar.postfix
    bar.close()


def _agent() -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(lr=1e-4))


def test_eval_lines_name_the_run_and_say_what_was_scored() -> None:
    label = "pong c51 seed0 agent.lr=0.0001"
    scored = EvalResult("pong", [-21.0, -19.0], [800, 900], agent_steps=1700)
    assert eval_line(label, 300, scored) == (
        f"{label}: eval @ 300 agent steps: 2 games, raw score -20.0, human-normalized "
        f"{scored.hns:.3f}"
    )
    none = EvalResult("pong", [], [], agent_steps=400)
    assert eval_line(label, 300, none) == (
        f"{label}: eval @ 300 agent steps: no game finished within 400 agent steps "
        "(trainer.eval_steps), so nothing was scored"
    )
    cut = EvalResult(
        "pong", [-3.0, -2.0], [100, 100], agent_steps=200, episode_truncated=[True, False],
        frame_cap=400,
    )  # fmt: skip
    assert eval_line(label, 300, cut).endswith("(1 of 2 games cut at the frame cap of 400 frames)")


def test_a_real_training_prints_labelled_eval_lines(tmp_path, capsys) -> None:
    game = "pong"
    from test_training import small_config

    from distrl_agents.training.loop import Trainer

    cfg = small_config("dqn", total_steps=100, eval_period=100, checkpoint_period=0)
    cfg.env.overrides = {"max_num_frames_per_episode": 200}
    cfg.logger.progress = True
    run_dir = tmp_path / f"{game}-dqn-seed0" / "agent.lr=0.001"
    trainer = Trainer(cfg, run_dir)
    try:
        trainer.run()
    finally:
        trainer.close()
    out = capsys.readouterr().out
    assert f"{game} dqn seed0 agent.lr=0.001: eval @ 100 agent steps: 1 games" in out
