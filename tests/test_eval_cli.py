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
    captured = capsys.readouterr()
    printed = captured.out
    assert "qrdqn on pong" in printed and "human-normalized" in printed
    final = json.loads((trained_run / "eval_final.json").read_text())
    assert final["source"] == "distrl-eval" and len(final["episode_returns"]) == 2
    assert final["hns"] is not None and final["agent_step"] == 160
    rows = (out / "episodes.csv").read_text().strip().splitlines()
    assert rows[0] == "episode,raw_score,length_agent_steps" and len(rows) == 3
    assert len(list((out / "distributions").glob("step_*.png"))) >= 2
    # Games cut at 400 frames (pong does not end in 100 agent steps): said, and recorded.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["games"] == 2 and summary["games_truncated"] == 2
    assert summary["max_frames_per_game"] == 400 and "cut at the frame cap" in summary["hns_note"]
    assert "2 of 2 games were cut at the frame cap of 400 frames" in printed
    # The video: the game's RGB screen (not the agent's 84x84 grey frames), one frame per step.
    from PIL import Image

    from distrl_agents.evaluation.video import mp4_writer_available

    video = out / ("episode.mp4" if mp4_writer_available() else "episode.gif")
    # 100 agent steps + the last frame
    assert f"video of the first game of env 0: {video.name}, 101 frames" in printed
    if video.suffix == ".gif":
        with Image.open(video) as gif:
            assert gif.size == (160, 210) and gif.n_frames > 10  # (PIL merges equal frames)
            colours = {c for _, c in gif.convert("RGB").getcolors(maxcolors=1 << 16)}
            assert any(len(set(c)) > 1 for c in colours)  # not grey
    # The bar on stderr: games of the total and agent steps.
    err = captured.err
    assert "eval pong" in err and "2/2" in err and "agent steps" in err


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

    # Ms. Pac-Man under the nature protocol: the random no-op start shows in the first frame
    # (Breakout's and Pong's first frames do not move during the no-ops now that no protocol
    # presses FIRE on reset).
    env = make_atari_env("ms_pacman", protocol="nature", num_envs=1, seed=5)

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
    # without a seed every evaluation replays its start
    np.testing.assert_array_equal(unseeded[0], unseeded[1])
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


def test_a_game_that_runs_long_is_said_once_with_its_env(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Breakout under sticky actions without FIRE plays to the 108k-frame cap: one line per such
    game, naming its env and game; here "long" is 30 agent steps of a 100-step game."""
    from distrl_agents.cli import eval as eval_mod

    real_evaluate = eval_mod.evaluate
    monkeypatch.setattr(
        eval_mod,
        "evaluate",
        lambda act, env, **kw: real_evaluate(act, env, **kw, long_game_steps=30),
    )
    code = eval_main(
        [str(trained_run), "--episodes", "2", "--num-envs", "2", "--device", "cpu",
         "--out", str(trained_run / "eval_long"), "--no-final"]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    for env in (0, 1):
        line = f"note: the game of env {env} (pong) has run 30 agent steps (120 frames) without"
        assert err.count(line) == 1, err
    assert "the frame cap ends it at 400 frames (100 agent steps)" in err
    assert "without FIRE on reset" in err  # the machado protocol


def test_long_game_callback_counts_only_games_that_will_be_counted() -> None:
    import numpy as np

    from distrl_agents.envs import make_atari_env
    from distrl_agents.evaluation import evaluate
    from distrl_agents.evaluation.evaluator import LONG_GAME_FLOOR, _long_game_limit

    env = make_atari_env("pong", num_envs=2, max_num_frames_per_episode=200)  # 50 agent steps
    calls: list[tuple[int, int]] = []
    games: list[int] = []
    result = evaluate(
        lambda obs, eps: np.zeros(len(obs), dtype=np.int64),
        env,
        episodes=3,
        on_long_game=lambda i, n: calls.append((i, n)),
        on_game=games.append,
        long_game_steps=20,
    )
    env.close()
    # env 0 plays two counted games, env 1 one (its second game is not counted: not reported).
    assert sorted(calls) == [(0, 20), (0, 20), (1, 20)]
    assert games[-1] == 3 and games == sorted(games)
    assert result.truncated_games == 3 and result.frame_cap == 200
    assert result.episode_lengths == [50, 50, 50]
    # 5 x the median finished length when shorter than long_game_steps, never under the floor.
    assert _long_game_limit([], 10_000) == 10_000
    assert _long_game_limit([3000, 4000, 5000], 10_000) == 10_000
    assert _long_game_limit([1000, 1200, 5000], 10_000) == 6000
    assert _long_game_limit([10, 20], 10_000) == LONG_GAME_FLOOR


@pytest.mark.parametrize("protocol", ["machado", "nature"])
def test_the_video_replays_the_recorded_game_exactly(protocol: str) -> None:
    """The RGB video is the evaluated game played again from its seed and actions: replayed in
    grey, it gives the agent's frames bit for bit (sticky actions and no-op starts included)."""
    import numpy as np

    from distrl_agents.envs import make_atari_env
    from distrl_agents.evaluation import evaluate
    from distrl_agents.evaluation.video import _replay, replay_screens

    env = make_atari_env("breakout", protocol=protocol, num_envs=2, seed=11,
                         max_num_frames_per_episode=1000)  # fmt: skip
    rng = np.random.default_rng(0)
    result = evaluate(
        lambda obs, eps: rng.integers(0, env.num_actions, len(obs)),
        env, episodes=2, record_env=1, seed=5,
    )  # fmt: skip
    spec = env.spec_info
    env.close()
    assert result.record_seed == 6 and len(result.actions) == len(result.observations) > 10
    grey = list(_replay(spec, result.record_seed, result.actions, rgb=False))
    assert len(grey) == len(result.observations)
    for t, (mine, seen) in enumerate(zip(grey, result.observations)):
        np.testing.assert_array_equal(mine, seen, err_msg=f"frame {t}")
    screens = list(replay_screens(spec, result.record_seed, result.actions))
    assert len(screens) == len(grey) and screens[0].shape == (210, 160, 3)


def test_write_video_gif_and_mp4(tmp_path: Path) -> None:
    import numpy as np

    from distrl_agents.evaluation import video

    frames = [np.full((210, 160, 3), (i, 0, 255 - i), dtype=np.uint8) for i in range(0, 250, 50)]
    gif = video.write_video(iter(frames), tmp_path / "a", mp4=False)
    assert gif.path == tmp_path / "a.gif" and gif.frames == 5 and gif.cut == 0
    video.GIF_MAX_FRAMES, before = 3, video.GIF_MAX_FRAMES
    try:
        cut = video.write_video(iter(frames), tmp_path / "b", mp4=False, total=len(frames))
    finally:
        video.GIF_MAX_FRAMES = before
    assert (cut.frames, cut.cut) == (3, 2)
    from PIL import Image

    with Image.open(cut.path) as g:
        assert g.n_frames == 3
    pytest.importorskip("imageio_ffmpeg")
    mp4 = video.write_video(iter(frames), tmp_path / "c", mp4=True)
    assert mp4.path == tmp_path / "c.mp4" and mp4.frames == 5 and mp4.path.stat().st_size > 500
