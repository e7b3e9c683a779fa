"""The training loop shared by every agent.

One iteration steps ``num_envs`` games with one batched forward pass, stores the transitions,
and runs as many gradient updates as the replay ratio asks for (``1 / update_period`` updates per
agent step, whatever ``num_envs`` is). Nothing here branches on the agent type.

Counting: an *agent step* is one action in one game (4 Atari frames). The autoreset step that
starts a new game after a game over is not an agent step (the game ignores its action).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distrl_agents.envs import AtariEnv, make_atari_env
from distrl_agents.evaluation.evaluator import EvalResult
from distrl_agents.monitoring.writer import MetricWriter
from distrl_agents.replay import ReplayBuffer
from distrl_agents.training import checkpoint as ckpt
from distrl_agents.training.agent_factory import (
    build_agent,
    check_compatible,
    compatibility_key,
    resolve_settings,
)
from distrl_agents.training.config import RunConfig
from distrl_agents.training.device import (
    available_cpus,
    replay_storage_device,
    resolve_device,
    resolve_torch_threads,
    rng_state,
    seed_everything,
    set_rng_state,
    tune_host_allocator,
)
from distrl_agents.training.metrics import (
    TrainingLog,
    eval_line,
    log_distributions,
    markdown_table,
    progress_bar,
)
from distrl_agents.training.periodic_eval import TrainingEvaluator
from distrl_agents.training.resume import (
    drop_records_after,
    end_interrupted_games,
    load_replay,
)
from distrl_agents.training.run_dir import check_writable_dir, code_record
from distrl_agents.training.schedule import Due, linear_epsilon, next_multiple
from distrl_agents.training.signals import catching_stop_signals


@dataclass
class TrainSummary:
    run_dir: Path
    agent_step: int
    num_updates: int
    finished: bool
    stopped_by: str | None
    last_eval: EvalResult | None


def _now() -> float:
    """Seconds on a monotonic clock (``trainer.checkpoint_minutes``)."""
    return time.monotonic()


class Trainer:
    """Runs (or resumes) one training run in ``run_dir``.

    Every setting is validated and every object built in ``__init__``, before any file is
    written; :meth:`run` trains until ``total_steps`` or a stop signal.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike[str]) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        check_writable_dir(self.run_dir)
        self.device = resolve_device(cfg.trainer.device)
        # A run directory that holds another run (other settings) is refused before any set-up.
        self._resume_from = ckpt.latest_checkpoint(self.run_dir)
        self._resume_state = ckpt.load_state(self._resume_from) if self._resume_from else {}
        check_compatible(cfg, self._resume_state, self.run_dir, self._resume_from, self.device)
        tune_host_allocator()
        self._torch_threads_before = torch.get_num_threads()
        self._set_torch_threads()
        seed_everything(cfg.seed)
        self.env = make_atari_env(
            cfg.env.game,
            protocol=cfg.env.protocol,
            num_envs=cfg.env.num_envs,
            seed=cfg.seed,
            **cfg.env.overrides,
        )
        self.game = self.env.game
        self.num_actions = self.env.num_actions
        self.obs_shape, obs_dtype = _observation_spec(self.env)
        # Decided once, before the agent is built; a resumed run keeps the precision it started
        # with (and the compile mode it chose on this machine).
        self.settings = resolve_settings(
            cfg,
            num_actions=self.num_actions,
            obs_shape=self.obs_shape,
            device=self.device,
            obs_dtype=obs_dtype,
            recorded=self._resume_state if self._resume_from else None,
        )
        self.agent = build_agent(
            cfg,
            num_actions=self.num_actions,
            obs_shape=self.obs_shape,
            device=self.device,
            settings=self.settings,
        )
        # The loop's own state (saved in checkpoints).
        self.rng = np.random.default_rng(cfg.seed)
        self.agent_step = 0
        self.update_credit = 0.0
        self._checkpoint_due_at = float("inf")  # set when a run starts
        self.last_sync = 0
        self.fixed_states: np.ndarray | None = None
        self.obs: np.ndarray | None = None
        self._stop: int | None = None
        self._evaluator = TrainingEvaluator(
            cfg,
            self.run_dir,
            game=self.game,
            frameskip=self.env.spec_info.frameskip,
            job_label=self._job_label,
        )
        self.writer: MetricWriter | None = None
        self.replay_storage = replay_storage_device(
            cfg.replay.storage, self.device, cfg.replay.capacity
        )
        self._replay: ReplayBuffer | None = None
        if self._replay_file() is None:
            # Else rebuilt from the file in _restore: the buffer keeps the settings its run
            # started with (e.g. the beta schedule, even when a resume extends total_steps).
            self._replay = self._make_replay()

    def _set_torch_threads(self) -> None:
        """torch's threads next to the games' threads (``trainer.torch_threads``)."""
        t, env = self.cfg.trainer, self.cfg.env
        env_threads = int(env.overrides.get("num_threads", 0)) or min(
            env.num_envs, available_cpus()
        )
        threads = resolve_torch_threads(
            t.torch_threads, self.device, env_threads=env_threads, overlap=t.overlap
        )
        if threads:
            torch.set_num_threads(threads)

    @property
    def replay(self) -> ReplayBuffer:
        """The replay buffer (on resume it is rebuilt from its file when :meth:`run` starts)."""
        if self._replay is None:
            raise RuntimeError("the replay buffer is restored from the checkpoint by run()")
        return self._replay

    def _make_replay(self) -> ReplayBuffer:
        cfg, t, r = self.cfg, self.cfg.trainer, self.cfg.replay
        obs_shape = self.obs_shape
        return ReplayBuffer(
            r.capacity,
            num_envs=cfg.env.num_envs,
            frame_shape=obs_shape[1:],
            stack_size=obs_shape[0],
            n_step=r.n_step,
            gamma=t.gamma,
            prioritized=r.prioritized,
            alpha=r.alpha,
            beta=r.beta,
            beta_steps=r.beta_steps or t.total_steps,
            priority_eps=r.priority_eps,
            device=self.device,
            storage_device=self.replay_storage,
            seed=cfg.seed,
        )

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainSummary:
        """Train until ``trainer.total_steps`` or a stop signal; ends with a checkpoint."""
        t = self.cfg.trainer
        resumed = self._resume_from is not None
        writer = self._open_run(resumed)
        self.obs, _ = self.env.reset(seed=self.cfg.seed + (self.agent_step if resumed else 0))
        progress = progress_bar(t.total_steps, self.agent_step, self.cfg.logger.progress,
                                self._job_label())  # fmt: skip
        log = TrainingLog(writer, self.game, progress)
        due = Due.after(self.agent_step, self.cfg)
        self._checkpoint_due_at = _now() + 60.0 * t.checkpoint_minutes
        last_eval: EvalResult | None = None
        with catching_stop_signals(self._stop_at):
            if resumed and self._evaluator.missed(self.agent_step):
                # The evaluation due at the checkpoint was cut short by the stop signal (none
                # is recorded then): play it now, at the same agent step.
                last_eval = self.evaluate()
            while self.agent_step < t.total_steps and self._stop is None:
                epsilon = self._epsilon()
                new_steps, info = self._act_and_store(epsilon, log)
                log.count(new_steps, info, self.agent_step)
                self._learn_what_is_due(new_steps, log)
                evaluated = self._periodic_work(due, epsilon, log)
                if evaluated is not None:
                    last_eval = evaluated
        log.progress.close()
        return self._finish(last_eval)

    def _open_run(self, resumed: bool) -> MetricWriter:
        """Restore the checkpoint when ``resumed``, write ``config.json`` and open the
        TensorBoard writer (also kept as ``self.writer``)."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resumed:
            self._restore()
        # The config as given, with what ``auto`` resolved to (report settings read it) and the
        # code of each stretch of the run (version, git commit).
        config_file = self.run_dir / "config.json"
        previous = _saved_code(config_file) if resumed else None
        config = {
            **cfg.to_dict(),
            "resolved": {
                "precision": self.settings.precision.record(),
                "code": code_record(previous, self.agent_step),
            },
        }
        config_file.write_text(json.dumps(config, indent=2) + "\n")
        self.writer = MetricWriter(
            self.run_dir / "tb" if cfg.logger.tensorboard else None,
            # The checkpoint's own step was logged before the checkpoint was written: keep it,
            # drop only what the stopped run logged after it.
            purge_step=self.agent_step + 1 if resumed else None,
        )
        if not resumed:
            self.writer.text("config", "```\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```", 0)
            self.writer.text("agent/hparams", markdown_table(self.agent.spec), 0)
        return self.writer

    def _epsilon(self) -> float:
        t = self.cfg.trainer
        return linear_epsilon(
            self.agent_step,
            start=t.epsilon_start,
            end=t.epsilon_end,
            decay_steps=t.epsilon_decay_steps,
            warmup=t.learning_starts,
        )

    def _act_and_store(self, epsilon: float, log: TrainingLog) -> tuple[int, dict[str, Any]]:
        """One step of every game, stored in the replay; returns the number of agent steps it
        took (autoreset steps are none) and the env's ``info``."""
        t, obs = self.cfg.trainer, self.obs
        assert obs is not None
        if self.agent_step < t.learning_starts and t.warmup_actions == "uniform":
            actions = self.rng.integers(0, self.num_actions, self.cfg.env.num_envs)
        else:
            actions = self.agent.act(obs, epsilon)
        if t.overlap:
            # The games advance in ale-py's C++ threads while the learner updates; the
            # updates see the replay without this step's transitions (one step later).
            self.env.send(actions)
            self._learn_due(log)
            next_obs, reward, terminated, truncated, info = self.env.recv()
        else:
            next_obs, reward, terminated, truncated, info = self.env.step(actions)
        valid = ~info["autoreset"]
        learn_reward = info["clipped_reward"] if t.reward_clip else reward
        self.replay.add(obs, actions, learn_reward, terminated, truncated, valid=valid)
        self.obs = next_obs
        new_steps = int(valid.sum())
        self.agent_step += new_steps
        return new_steps, info

    def _learn_what_is_due(self, new_steps: int, log: TrainingLog) -> None:
        """Once learning has started: owe ``new_steps / update_period`` updates (the replay
        ratio, whatever ``num_envs`` is), run them (unless they overlap the games' next step)
        and sync the target network at its period."""
        t, lg = self.cfg.trainer, self.cfg.logger
        if self.agent_step < t.learning_starts or len(self.replay) < t.batch_size:
            return
        if self.fixed_states is None and lg.distribution_states > 0:
            k = min(lg.distribution_states, len(self.replay))
            self.fixed_states = self.replay.sample(k).obs.cpu().numpy()
        self.update_credit += new_steps / t.update_period
        if not t.overlap:
            self._learn_due(log)
        if self.agent_step - self.last_sync >= t.target_update_period:
            self.agent.sync_target()
            self.last_sync = self.agent_step - (
                (self.agent_step - self.last_sync) % t.target_update_period
            )

    def _learn_due(self, log: TrainingLog) -> None:
        """Run the gradient updates the replay ratio owes (``update_credit``)."""
        t = self.cfg.trainer
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.replay.sample(t.batch_size)
            result = self.agent.learn(batch)
            if self.cfg.replay.prioritized:
                self.replay.update_priorities(batch.indices, result.loss)
            log.window.add(result)

    def _periodic_work(self, due: Due, epsilon: float, log: TrainingLog) -> EvalResult | None:
        """Logging, distribution pictures, evaluation and checkpoints when due; returns the
        evaluation's result if one ran."""
        t, lg, step = self.cfg.trainer, self.cfg.logger, self.agent_step
        if step >= due.log:
            due.log = next_multiple(step, lg.log_period)
            log.write(step, epsilon=epsilon, replay=self.replay, agent=self.agent)
        if self.fixed_states is not None and step >= due.distributions:
            due.distributions = next_multiple(step, lg.distribution_period)
            assert self.writer is not None
            log_distributions(
                self.writer, self.agent, self.fixed_states, self.env.action_names, step
            )
        result = None
        if t.eval_period and step >= due.evaluation:
            due.evaluation = next_multiple(step, t.eval_period)
            result = self.evaluate()
            if lg.progress and not result.interrupted:
                log.progress.write(eval_line(self._job_label(), step, result))
        if t.checkpoint_period and step >= due.checkpoint:
            due.checkpoint = next_multiple(step, t.checkpoint_period)
            self.save_checkpoint()
        elif t.checkpoint_minutes and _now() >= self._checkpoint_due_at:
            self.save_checkpoint()
        return result

    def _finish(self, last_eval: EvalResult | None) -> TrainSummary:
        """Say why training stopped, write the final checkpoint and close the writer."""
        finished = self.agent_step >= self.cfg.trainer.total_steps
        stopped_by = None if self._stop is None else signal.Signals(self._stop).name
        if stopped_by is not None:
            print(
                f"{stopped_by} received at agent step {self.agent_step}: writing a checkpoint.",
                file=sys.stderr,
            )
        last = ckpt.latest_checkpoint(self.run_dir)
        if last is None or not last.name.endswith(f"{self.agent_step:012d}"):
            self.save_checkpoint()
        assert self.writer is not None
        self.writer.close()
        return TrainSummary(
            run_dir=self.run_dir,
            agent_step=self.agent_step,
            num_updates=self.agent.num_updates,
            finished=finished,
            stopped_by=stopped_by,
            last_eval=last_eval,
        )

    # ------------------------------------------------------------------ resume
    def _replay_file(self) -> Path | None:
        """The replay file of the checkpoint this run resumes from, if it has one."""
        if self._resume_from is None:
            return None
        replay_file = self._resume_from / ckpt.REPLAY_FILE
        return replay_file if replay_file.exists() else None

    def _restore(self) -> None:
        assert self._resume_from is not None
        state = self._resume_state
        self.agent.load_state_dict(state["agent"])
        self.agent_step = int(state["agent_step"])
        self.update_credit = float(state["update_credit"])
        self.last_sync = int(state["last_sync"])
        self.fixed_states = state.get("fixed_states")
        set_rng_state(state["rng"])
        self.rng.bit_generator.state = state["loop_rng"]
        replay_file = self._replay_file()
        if replay_file is not None:
            self._replay = load_replay(
                replay_file, device=self.device, storage_device=self.replay_storage
            )
            end_interrupted_games(self._replay, state.get("obs"))
        else:
            self._replay = self._make_replay()
            if self.cfg.trainer.save_replay:
                print(
                    f"warning: {self._resume_from} holds no replay buffer; resuming with an empty "
                    "one (learning restarts once it holds a batch).",
                    file=sys.stderr,
                )
        # Evaluation records after the checkpoint belong to the lost stretch: drop them.
        drop_records_after(self.run_dir / "evaluations.jsonl", self.agent_step)

    def _state(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "agent_step": self.agent_step,
            "update_credit": self.update_credit,
            "last_sync": self.last_sync,
            "fixed_states": self.fixed_states,
            "obs": self.obs,
            "rng": rng_state(),
            "loop_rng": self.rng.bit_generator.state,
            "config": self.cfg.to_dict(),
            "compatibility": compatibility_key(self.cfg),
            "resolved": self.settings.record(self.device),
            "game": self.game,
            "protocol": self.cfg.env.protocol,
            "env_spec": self.env.spec_info.__dict__,
            "action_names": list(self.env.action_names),
        }

    def save_checkpoint(self) -> Path:
        write = self.replay.save if self.cfg.trainer.save_replay else None
        self._checkpoint_due_at = _now() + 60.0 * self.cfg.trainer.checkpoint_minutes
        return ckpt.save_checkpoint(
            self.run_dir,
            self.agent_step,
            self._state(),
            write_replay=write,
            keep=self.cfg.trainer.keep_checkpoints,
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> EvalResult:
        """Play and record the evaluation due at this step (``periodic_eval``)."""
        return self._evaluator.run(
            self.agent, self.agent_step, self.writer, should_stop=lambda: self._stop is not None
        )

    def _job_label(self) -> str:
        """What the progress bar names: game, agent, seed and, for a run in a settings
        directory (``<game>-<agent>-seed<seed>/<settings>``), those settings in full."""
        cfg = self.cfg
        label = f"{self.game} {cfg.agent_label} seed{cfg.seed}"
        parent = self.run_dir.resolve().parent.name
        if parent.startswith(f"{self.game}-") and parent.endswith(f"-seed{cfg.seed}"):
            label += f" {self.run_dir.name}"
        return label

    def _stop_at(self, signum: int) -> None:
        """A stop signal arrived: the loop stops after this step and writes a checkpoint."""
        self._stop = signum

    def close(self) -> None:
        self.env.close()
        self._evaluator.close()
        torch.set_num_threads(self._torch_threads_before)


def _observation_spec(env: AtariEnv) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape ``(S, *frame)`` and torch dtype of one observation of ``env``."""
    space = env.single_observation_space
    assert space.shape is not None
    return tuple(space.shape), torch.from_numpy(np.zeros(0, space.dtype)).dtype


def _saved_code(config_file: Path) -> list[dict[str, Any]] | None:
    """The code record of a run's config.json (None where it has none or cannot be read)."""
    try:
        code = json.loads(config_file.read_text(encoding="utf-8"))["resolved"]["code"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, list) else None
