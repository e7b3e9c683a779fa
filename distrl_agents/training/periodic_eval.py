"""The greedy evaluations a training run plays at its periods (``trainer.eval_period``).

Each plays on environments of its own (built on first use), with game seeds drawn from the run
seed and the evaluation's number (:func:`distrl_agents.training.schedule.eval_env_seed`), and is
recorded in the run's ``evaluations.jsonl`` and TensorBoard (``eval/*``). One cut short by a stop
signal records nothing; a resumed run plays it again (:meth:`TrainingEvaluator.missed`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from distrl_agents.agents.base import Agent
from distrl_agents.envs import AtariEnv, make_atari_env
from distrl_agents.evaluation.evaluator import EvalResult, evaluate
from distrl_agents.evaluation.records import RESULTS_FILE, append_result, evaluation_record
from distrl_agents.monitoring.writer import MetricWriter
from distrl_agents.training.config import RunConfig
from distrl_agents.training.metrics import long_eval_game_line
from distrl_agents.training.resume import last_recorded_step
from distrl_agents.training.schedule import EVAL_SEED_OFFSET, eval_env_seed

__all__ = ["TrainingEvaluator"]


class TrainingEvaluator:
    """Plays and records the evaluations of the run ``cfg`` in ``run_dir``.

    ``game`` and ``frameskip`` are the training environment's; ``job_label`` names the run in
    the line printed for an unusually long evaluation game.
    """

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        *,
        game: str,
        frameskip: int,
        job_label: Callable[[], str],
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.game = game
        self.frameskip = frameskip
        self.job_label = job_label
        self.env: AtariEnv | None = None

    def _say_long_game(self, env: int, steps: int) -> None:
        assert self.env is not None
        spec = self.env.spec_info
        line = long_eval_game_line(
            self.job_label(), env, steps, spec.frameskip, spec.max_num_frames_per_episode
        )
        tqdm.write(line, file=sys.stderr)

    def run(
        self,
        agent: Agent,
        agent_step: int,
        writer: MetricWriter | None,
        should_stop: Callable[[], bool],
    ) -> EvalResult:
        """Evaluate ``agent`` at ``agent_step`` and record the result (unless interrupted)."""
        t = self.cfg.trainer
        if self.env is None:
            self.env = make_atari_env(
                self.cfg.env.game,
                protocol=self.cfg.env.protocol,
                num_envs=self.cfg.env.eval_num_envs,
                seed=self.cfg.seed + EVAL_SEED_OFFSET,
                **self.cfg.env.overrides,
            )
        # Evaluations are numbered by the period they close (the one due at step k * eval_period,
        # run at that step or a few steps after it, is number k), never by a counter that a
        # resume would have to restore.
        eval_index = agent_step // t.eval_period if t.eval_period else agent_step
        env_seed = eval_env_seed(self.cfg.seed, eval_index)
        agent.eval()
        try:
            result = evaluate(
                agent.act,
                self.env,
                episodes=t.eval_episodes,
                max_steps=t.eval_steps or None,
                last_game=t.eval_last_game,
                epsilon=t.eval_epsilon,
                should_stop=should_stop,
                seed=env_seed,
                on_long_game=self._say_long_game,
            )
        finally:
            agent.train()
        if result.interrupted:  # a stop signal arrived: no partial evaluation is recorded
            return result
        hns = result.hns
        record = evaluation_record(
            result,
            agent=self.cfg.agent_label,
            agent_settings=self.cfg.agent,
            game=self.game,
            seed=self.cfg.seed,
            protocol=self.cfg.env.protocol,
            agent_step=agent_step,
            frameskip=self.frameskip,
            eval_epsilon=t.eval_epsilon,
            source="train",
            eval_index=eval_index,
            env_seed=env_seed,
        )
        append_result(self.run_dir / RESULTS_FILE, record)
        if writer is not None:
            writer.scalar("eval/episodic_return", result.mean_return, agent_step)
            writer.scalar("eval/episodic_return_stderr", result.stderr_return, agent_step)
            writer.scalar("eval/episodes", len(result.episode_returns), agent_step)
            if hns is not None:
                writer.scalar("eval/hns", hns, agent_step)
        return result

    def missed(self, agent_step: int) -> bool:
        """Whether the last evaluation due at or before ``agent_step`` has no record (a stop
        signal interrupted it; records after the checkpoint were already dropped on resume)."""
        period = self.cfg.trainer.eval_period
        due = agent_step // period * period if period else 0
        return due > 0 and last_recorded_step(self.run_dir / "evaluations.jsonl") < due

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
