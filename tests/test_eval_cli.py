"""distrl-eval on a checkpoint from a short real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_training import small_config

from distrl_agents.cli.eval import eval_main
from distrl_agents.training.loop import Trainer


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    cfg = small_config("qrdqn", total_steps=160, eval_period=0)
    cfg.env.overrides = {"max_num_frames_per_episode": 400}  # games end within 100 steps
    trainer = Trainer(cfg, run_dir)
    trainer.run()
    trainer.close()
    return run_dir


def test_eval_writes_scores_video_and_distributions(trained_run: Path, capsys) -> None:
    out = trained_run / "eval_out"
    code = eval_main(
        [str(trained_run), "--episodes", "2", "--num-envs", "2", "--device", "cpu",
         "--out", str(out), "--video", "--distributions"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "qrdqn on pong" in printed and "human-normalized" in printed
    final = json.loads((trained_run / "eval_final.json").read_text())
    assert final["source"] == "distrl-eval" and len(final["episode_returns"]) == 2
    assert final["hns"] is not None and final["agent_step"] == 160
    rows = (out / "episodes.csv").read_text().strip().splitlines()
    assert rows[0] == "episode,raw_score,length_agent_steps" and len(rows) == 3
    assert (out / "episode.gif").stat().st_size > 1000
    assert len(list((out / "distributions").glob("step_*.png"))) >= 2


def test_eval_of_a_checkpoint_directory_and_step_budget(trained_run: Path) -> None:
    checkpoint = next((trained_run / "checkpoints").glob("step_*"))
    out = trained_run / "eval_budget"
    code = eval_main(
        [str(checkpoint), "--episodes", "5", "--steps", "20", "--out", str(out), "--no-final"]
    )
    # 20 agent steps cannot finish a game: no score, exit status 1, files still written.
    assert code == 1
    assert json.loads((out / "summary.json").read_text())["episode_returns"] == []


def test_ctrl_c_keeps_the_finished_games_marked_and_not_final(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import os
    import signal

    from distrl_agents.cli import eval as eval_mod

    final = trained_run / "eval_final.json"
    before = final.read_bytes() if final.exists() else None
    real_evaluate = eval_mod.evaluate

    def evaluate_then_ctrl_c(act, env, **kw):  # type: ignore[no-untyped-def]
        calls = []

        def act_and_interrupt(obs, eps):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) == 150:  # after the first games of 100 steps or less have ended
                os.kill(os.getpid(), signal.SIGINT)
            return act(obs, eps)

        return real_evaluate(act_and_interrupt, env, **kw)

    monkeypatch.setattr(eval_mod, "evaluate", evaluate_then_ctrl_c)
    out = trained_run / "eval_interrupted"
    code = eval_main(
        [str(trained_run), "--episodes", "50", "--num-envs", "1", "--device", "cpu",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 130
    assert "stopped by a signal after" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and 1 <= len(summary["episode_returns"]) < 50
    rows = (out / "episodes.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(summary["episode_returns"])
    assert (final.read_bytes() if final.exists() else None) == before  # the final score untouched
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_eval_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert eval_main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert eval_main([str(tmp_path)]) == 2
    assert "No checkpoint" in capsys.readouterr().err


def test_evaluation_stops_at_once_on_a_stop_request() -> None:
    import numpy as np

    from distrl_agents.envs import make_atari_env
    from distrl_agents.evaluation import evaluate

    env = make_atari_env("pong", num_envs=2)
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 10

    result = evaluate(
        lambda obs, eps: np.zeros(len(obs), dtype=np.int64), env, episodes=3, should_stop=stop
    )
    assert result.interrupted and result.agent_steps == 20 and result.episode_returns == []


def test_evaluation_seed_chooses_the_games_it_starts_from() -> None:
    import numpy as np

    from distrl_agents.envs import make_atari_env
    from distrl_agents.evaluation import evaluate

    # Breakout under the nature protocol: the random no-op start shows in the first frame.
    env = make_atari_env("breakout", protocol="nature", num_envs=1, seed=5)

    def first_frame(seed: int | None) -> np.ndarray:
        result = evaluate(
            lambda obs, eps: np.zeros(len(obs), dtype=np.int64),
            env,
            episodes=1,
            max_steps=2,
            record_env=0,
            seed=seed,
        )
        return result.observations[0]

    unseeded = [first_frame(None) for _ in range(2)]
    np.testing.assert_array_equal(*unseeded)  # without a seed every evaluation replays its start
    np.testing.assert_array_equal(first_frame(1), first_frame(1))
    assert not np.array_equal(first_frame(1), first_frame(2))
    env.close()


def test_noisy_evaluation_samples_noise_and_is_never_the_final_score(
    tmp_path: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--noisy plays with the noisy layers sampling fresh noise every step (as in training),
    marks the record eval_noisy and leaves eval_final.json alone; an agent without noisy layers
    is refused with one message."""
    import torch

    from distrl_agents.cli import eval as eval_mod

    cfg = small_config("c51", total_steps=100, eval_period=0)
    cfg.network["noisy"] = True
    cfg.env.overrides = {"max_num_frames_per_episode": 400}
    run_dir = tmp_path / "noisy_run"
    trainer = Trainer(cfg, run_dir)
    trainer.run()
    trainer.close()
    real_evaluate = eval_mod.evaluate
    noise_draws: list[torch.Tensor] = []

    def watching(act, env, **kw):  # type: ignore[no-untyped-def]
        agent = act.__self__
        assert agent.training  # noisy layers sample

        def act_and_record(obs, eps):  # type: ignore[no-untyped-def]
            actions = act(obs, eps)
            buffers = [b for n, b in agent.acting_network().named_buffers() if "eps" in n]
            noise_draws.append(torch.cat([b.flatten() for b in buffers]).clone())
            return actions

        return real_evaluate(act_and_record, env, **kw)

    monkeypatch.setattr(eval_mod, "evaluate", watching)
    out = run_dir / "eval_noisy"
    code = eval_main([str(run_dir), "--episodes", "2", "--noisy", "--out", str(out)])
    assert code == 0
    assert len(noise_draws) > 2 and not torch.equal(noise_draws[0], noise_draws[1])
    record = json.loads((out / "summary.json").read_text())
    assert record["eval_noisy"] is True and len(record["episode_returns"]) == 2
    assert not (run_dir / "eval_final.json").exists()
    capsys.readouterr()

    code = eval_main([str(trained_run), "--episodes", "1", "--noisy", "--out", str(tmp_path / "x")])
    assert code == 2 and "has no noisy layers" in capsys.readouterr().err
