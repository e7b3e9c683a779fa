"""``distrl-eval``: play greedy games with a trained agent and report raw and normalized scores.

    distrl-eval runs/default/breakout-c51-seed0                # newest checkpoint of a run
    distrl-eval runs/.../checkpoints/step_000000250000 --episodes 30 --video --distributions

Works on the CPU for a checkpoint trained on a GPU. Writes ``eval_final.json`` into the run
directory (what ``distrl-report`` takes as the run's final score) unless ``--no-final`` is given,
and ``episodes.csv`` / ``summary.json`` (plus the optional video and pictures) into ``--out``.
A progress bar on stderr counts finished games and agent steps, and a line says when a game runs
unusually long (it may be playing until the frame cap).
Ctrl-C (or SIGTERM) stops play at once: the games finished so far are written to ``--out``,
marked ``"interrupted": true``, and not taken as the run's final score (exit status 130).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from distrl_agents.evaluation.evaluator import EvalResult, evaluate
from distrl_agents.evaluation.records import FINAL_FILE, evaluation_record, write_final_result
from distrl_agents.training.signals import catching_stop_signals

__all__ = ["eval_main", "load_agent", "write_distribution_pictures"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distrl-eval",
        description="Evaluate a trained agent: greedy games under the run's protocol.",
    )
    p.add_argument("path", help="run directory (newest checkpoint is used) or checkpoint directory")
    p.add_argument("--episodes", type=int, default=10, help="games to play (default 10)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="step budget in agent steps: score the games one env playing them back to back "
        "would end within it (a game in progress at the budget is dropped); default: none",
    )
    p.add_argument("--epsilon", type=float, default=0.001, help="eval epsilon (default 0.001)")
    p.add_argument("--num-envs", type=int, default=4, help="games played in parallel")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--seed", type=int, default=None, help="env seed (default: run seed + 20000)")
    p.add_argument("--protocol", choices=["machado", "nature"], default=None,
                   help="override the run's protocol (default: the run's own)")  # fmt: skip
    p.add_argument("--out", default=None, help="output directory (default <run_dir>/eval)")
    p.add_argument(
        "--video",
        action="store_true",
        help="write a video of the first game in the game's colours: episode.mp4 where "
        "imageio-ffmpeg is installed, else episode.gif (its first 3,000 frames)",
    )
    p.add_argument(
        "--distributions",
        action="store_true",
        help="write pictures of the predicted return distributions along the first game",
    )
    p.add_argument(
        "--noisy",
        action="store_true",
        help="noisy layers act with fresh noise every step, as in training (default: their mean "
        "weights, as Dopamine's eval_mode); recorded as eval_noisy, never written to "
        "eval_final.json",
    )
    p.add_argument("--no-final", action="store_true", help="do not write <run_dir>/eval_final.json")
    return p


def load_agent(checkpoint: Path, device: str = "auto") -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild the agent of a checkpoint on ``device``; returns (agent, RunConfig, state).
    (:func:`distrl_agents.api.load_checkpoint`; the documented API is
    :func:`distrl_agents.load_agent`.)"""
    from distrl_agents.api import load_checkpoint

    return load_checkpoint(checkpoint, device)


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``distrl-eval``; returns the process exit status."""
    args = _parser().parse_args(argv)
    from distrl_agents.training import checkpoint as ckpt

    if args.episodes < 1 or args.num_envs < 1 or not 0 <= args.epsilon <= 1:
        print("error: --episodes and --num-envs must be >= 1, --epsilon in [0, 1]", file=sys.stderr)
        return 2
    try:
        checkpoint = ckpt.find_checkpoint(args.path)
        agent, cfg, state = load_agent(checkpoint, args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.noisy:
        if not agent.noisy:
            print(
                f"error: --noisy: this {cfg.agent_label} agent has no noisy layers "
                "(network.noisy=false); evaluate without --noisy",
                file=sys.stderr,
            )
            return 2
        agent.train(True)  # noisy layers sample; acting draws fresh noise for every step
    run_dir = checkpoint.parent.parent
    out = Path(args.out) if args.out else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    protocol = args.protocol or cfg.env.protocol
    result, spec = _play(agent, cfg, protocol, args)
    frameskip = spec.frameskip
    record = evaluation_record(
        result,
        agent=cfg.agent_label,
        agent_settings=cfg.agent,
        game=result.game,
        seed=cfg.seed,
        protocol=protocol,
        agent_step=int(state["agent_step"]),
        frameskip=frameskip,
        eval_epsilon=args.epsilon,
        source="distrl-eval",
        checkpoint=checkpoint.name,
        **({"eval_noisy": True} if args.noisy else {}),
    )
    if result.interrupted:  # a stop signal: keep the games finished so far, marked
        record["interrupted"] = True
        _write_scores(out, record, result)
        return _print_interrupted(result, args.episodes, out)
    _write_scores(out, record, result)
    if (
        result.episode_returns
        and not args.no_final
        and not args.noisy  # the run's own protocol evaluates with the mean weights
        and args.protocol in (None, cfg.env.protocol)
    ):
        write_final_result(run_dir / FINAL_FILE, record)
    _write_pictures(args, out, result, agent, state, spec)
    return _print_summary(cfg, result, protocol, checkpoint.name, out)


def _play(agent: Any, cfg: Any, protocol: str, args: argparse.Namespace) -> tuple[EvalResult, Any]:
    """Play the evaluation games; returns the result and the games' ``EnvSpec``."""
    from distrl_agents.envs import make_atari_env

    seed = cfg.seed + 20_000 if args.seed is None else args.seed
    env = make_atari_env(
        cfg.env.game, protocol=protocol, num_envs=args.num_envs, seed=seed, **cfg.env.overrides
    )
    spec = env.spec_info
    want_frames = args.video or args.distributions
    stop: list[int] = []
    with catching_stop_signals(stop.append), GameProgress(args.episodes, spec) as progress:
        result = evaluate(
            agent.act,
            env,
            episodes=args.episodes,
            max_steps=args.steps,
            epsilon=args.epsilon,
            record_env=0 if want_frames else None,
            on_step=progress.steps,
            on_game=progress.games,
            on_long_game=progress.long_game,
            should_stop=lambda: bool(stop),
        )
    env.close()
    # The run's env settings (cfg.env.overrides) set the frameskip; a protocol does not.
    return result, spec


class GameProgress:
    """A progress bar over the games of an evaluation (on stderr): games finished of the total,
    agent steps and the time left; and one line per game that runs unusually long."""

    def __init__(self, episodes: int, spec: Any, enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        self.spec = spec
        self.agent_steps = 0
        self.bar = tqdm(
            total=episodes,
            unit="game",
            desc=f"eval {spec.game}",
            file=sys.stderr,
            dynamic_ncols=True,
            miniters=0,  # redraw on time alone: no game may end for minutes
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
            disable=not enabled,
        )

    def __enter__(self) -> GameProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def steps(self, n: int) -> None:
        self.agent_steps += n
        self.bar.set_postfix_str(f"{self.agent_steps:,} agent steps", refresh=False)
        self.bar.update(0)  # redraws when mininterval has passed

    def games(self, finished: int) -> None:
        self.bar.update(finished - self.bar.n)

    def long_game(self, env: int, steps: int) -> None:
        self.bar.write(long_game_message(self.spec, env, steps), file=sys.stderr)


def long_game_message(spec: Any, env: int, steps: int) -> str:
    """What distrl-eval says about a game of ``env`` that has run ``steps`` agent steps."""
    fs, cap = spec.frameskip, spec.max_num_frames_per_episode
    message = (
        f"note: the game of env {env} ({spec.game}) has run {steps:,} agent steps "
        f"({steps * fs:,} frames) without ending; the frame cap ends it at {cap:,} frames "
        f"({cap // fs:,} agent steps)"
    )
    if not spec.use_fire_reset:
        message += (
            " -- without FIRE on reset, an agent that never presses FIRE (to launch the ball in "
            "Breakout) plays until the cap; --steps bounds the whole evaluation"
        )
    return message


def _print_interrupted(result: EvalResult, episodes: int, out: Path) -> int:
    """Say what a stop signal left; returns 130 (the shell's status for Ctrl-C)."""
    n = len(result.episode_returns)
    score = f", raw score {result.mean_return:.1f} so far" if n else ""
    print(
        f"distrl-eval: stopped by a signal after {n} of {episodes} games{score}; written to "
        f"{out} (marked interrupted; {FINAL_FILE} left as it was)."
    )
    return 130


def _write_scores(out: Path, record: dict[str, Any], result: EvalResult) -> None:
    """``episodes.csv`` (one row per game) and ``summary.json`` (the record) in ``out``."""
    with (out / "episodes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["episode", "raw_score", "length_agent_steps"])
        for i, (r, n) in enumerate(zip(result.episode_returns, result.episode_lengths)):
            w.writerow([i, r, n])
    write_final_result(out / "summary.json", record)  # strict JSON, written atomically


def _write_pictures(
    args: argparse.Namespace,
    out: Path,
    result: EvalResult,
    agent: Any,
    state: dict[str, Any],
    spec: Any,
) -> None:
    """The video of the first game (``--video``) and its distribution pictures
    (``--distributions``)."""
    from distrl_agents.evaluation.video import GIF_MAX_FRAMES, replay_screens, write_video

    if args.video and result.actions and result.record_seed is not None:
        screens = replay_screens(spec, result.record_seed, result.actions)
        fps = max(1, round(60 / spec.frameskip))  # real time: the Atari draws 60 frames a second
        video = write_video(screens, out / "episode", fps=fps, total=len(result.actions))
        cut = ""
        if video.cut:
            cut = (
                f"; a GIF keeps the first {GIF_MAX_FRAMES:,} frames, {video.cut:,} left out "
                "(install imageio-ffmpeg for an MP4 of the whole game)"
            )
        print(f"video of the first game of env 0: {video.path.name}, {video.frames:,} frames{cut}")
    if args.distributions and result.observations:
        write_distribution_pictures(agent, result.observations, out / "distributions", state)


def _print_summary(cfg: Any, result: EvalResult, protocol: str, checkpoint: str, out: Path) -> int:
    """Say what was scored; returns the exit status (1: no game finished)."""
    if not result.episode_returns:
        print(
            f"{cfg.agent_name} on {result.game}: no game finished within {result.agent_steps} "
            "agent steps, so nothing was scored; raise --steps (or leave it out)."
        )
        print(f"written to {out}")
        return 1
    hns = "n/a (no reference scores)" if result.hns is None else f"{result.hns:.3f}"
    stderr = "" if result.games < 2 else f" ± {result.stderr_return:.1f} (s.e.)"
    print(
        f"{cfg.agent_name} on {result.game} ({protocol}), checkpoint {checkpoint}: "
        f"{result.games} games, raw score {result.mean_return:.1f}{stderr}, "
        f"human-normalized {hns}"
    )
    if result.truncated_games:
        print(
            f"{result.truncated_games} of {result.games} games were cut at the frame cap of "
            f"{result.frame_cap:,} frames: their scores, and so the HNS, are those of unfinished "
            "games (summary.json: games_truncated, hns_note)"
        )
    print(f"written to {out}")
    return 0


def write_distribution_pictures(
    agent: Any, frames: list[np.ndarray], out: Path, state: dict[str, Any], count: int = 6
) -> None:
    """Predicted return distributions at ``count`` evenly spaced moments of the recorded game."""
    import matplotlib.pyplot as plt
    import torch

    from distrl_agents.evaluation.distribution_plot import distribution_figure

    out.mkdir(parents=True, exist_ok=True)
    pad = [np.zeros_like(frames[0])] * 3
    stacked = pad + frames
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int)
    obs = np.stack([np.stack(stacked[i : i + 4]) for i in picks])  # [K, 4, 84, 84]
    with torch.no_grad():
        dist = agent.distribution(agent.online, torch.as_tensor(obs))
    for k, t in enumerate(picks):
        fig = distribution_figure(
            dist, k, frame=obs[k, -1], action_names=state.get("action_names"),
            title=f"agent step {t} of the game",
        )  # fmt: skip
        fig.savefig(out / f"step_{t:06d}.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":  # python -m distrl_agents.cli.eval ... (as distrl-eval)
    raise SystemExit(eval_main())
