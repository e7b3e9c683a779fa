"""The training loop shared by every agent.

One iteration steps ``num_envs`` games with one batched forward pass, stores the transitions,
and runs as many gradient updates as the replay ratio asks for (``1 / update_period`` updates per
agent step, whatever ``num_envs`` is). Nothing here branches on the agent type.

Counting: an *agent step* is one action in one game (4 Atari frames). The autoreset step that
starts a new game after a game over is not an agent step (the game ignores its action).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distrl_agents.envs import AtariEnv, make_atari_env
from distrl_agents.evaluation.evaluator import EvalResult, evaluate
from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score
from distrl_agents.evaluation.report import append_result
from distrl_agents.logging.writer import MetricWriter
from distrl_agents.replay import ReplayBuffer, ReplayLoadError
from distrl_agents.training import checkpoint as ckpt
from distrl_agents.training.agent_factory import build_agent, check_compatible, compatibility_key
from distrl_agents.training.config import RunConfig
from distrl_agents.training.device import (
    available_cpus,
    resolve_device,
    resolve_torch_threads,
    rng_state,
    seed_everything,
    set_rng_state,
    tune_host_allocator,
)
from distrl_agents.types import LearnResult

EVAL_SEED_OFFSET = 10_000


def eval_env_seed(run_seed: int, eval_index: int) -> int:
    """Environment seed of the ``eval_index``-th periodic evaluation of run ``run_seed``.

    Each evaluation starts its games from fresh seeds (new no-op starts, new sticky-action
    draws) instead of replaying the same ones, and the seed depends only on the run seed and the
    evaluation's index, so a resumed run evaluates exactly as an uninterrupted one. Evaluation
    env ``i`` gets ``eval_env_seed(...) + i``; the value stays below 2**30 for ALE.
    """
    words = np.random.SeedSequence([int(run_seed), EVAL_SEED_OFFSET, int(eval_index)])
    return int(words.generate_state(1, dtype=np.uint32)[0]) % (1 << 30)


#: Signals that stop training with a checkpoint (SIGUSR1, SIGUSR2: cluster pre-emption / time
#: limit notices; SIGUSR2 is submitit's, see distrl_agents.training.sweep).
STOP_SIGNALS = tuple(
    s
    for s in (
        signal.SIGINT,
        signal.SIGTERM,
        *(getattr(signal, n, None) for n in ("SIGUSR1", "SIGUSR2")),
    )
    if s is not None
)


@dataclass
class TrainSummary:
    run_dir: Path
    agent_step: int
    num_updates: int
    finished: bool
    stopped_by: str | None
    last_eval: EvalResult | None


def linear_epsilon(step: int, *, start: float, end: float, decay_steps: int, warmup: int) -> float:
    """Epsilon of epsilon-greedy: ``start`` during warm-up, then linear to ``end`` (Dopamine)."""
    if step < warmup:
        return start
    if decay_steps <= 0:
        return end
    frac = min(1.0, (step - warmup) / decay_steps)
    return start + frac * (end - start)


#: Bytes per stored transition (an 84x84 frame plus metadata; see docs/replay.md).
BYTES_PER_TRANSITION = 7_100


def replay_storage_device(storage: str, device: torch.device, capacity: int) -> torch.device:
    """Where the replay frames live: ``host`` RAM, the training ``device``, or ``auto``: the GPU
    when the whole buffer takes at most half of its free memory (a batch then never crosses
    PCIe), else host RAM with pinned, non-blocking copies."""
    if storage == "device":
        return device
    if storage == "auto" and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if capacity * BYTES_PER_TRANSITION <= free // 2:
            return device
    return torch.device("cpu")


class Trainer:
    """Runs (or resumes) one training run in ``run_dir``.

    Every setting is validated and every object built in ``__init__``, before any file is
    written; :meth:`run` trains until ``total_steps`` or a stop signal.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike[str]) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        check_writable_dir(self.run_dir)
        t = cfg.trainer
        self.device = resolve_device(t.device)
        tune_host_allocator()
        self._torch_threads_before = torch.get_num_threads()
        env_threads = int(cfg.env.overrides.get("num_threads", 0)) or min(
            cfg.env.num_envs, available_cpus()
        )
        threads = resolve_torch_threads(
            t.torch_threads, self.device, env_threads=env_threads, overlap=t.overlap
        )
        if threads:
            torch.set_num_threads(threads)
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
        obs_shape = self.env.single_observation_space.shape
        assert obs_shape is not None
        self.obs_shape: tuple[int, ...] = tuple(obs_shape)
        obs_dtype = torch.from_numpy(np.zeros(0, self.env.single_observation_space.dtype)).dtype
        self.agent = build_agent(
            cfg,
            num_actions=self.num_actions,
            obs_shape=self.obs_shape,
            device=self.device,
            obs_dtype=obs_dtype,
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.agent_step = 0
        self.update_credit = 0.0
        self.last_sync = 0
        self.fixed_states: np.ndarray | None = None
        self.obs: np.ndarray | None = None
        self._stop: int | None = None
        self._eval_env: AtariEnv | None = None
        self.writer: MetricWriter | None = None
        self._resume_from = ckpt.latest_checkpoint(self.run_dir)
        if self._resume_from is not None:
            self._resume_state = ckpt.load_state(self._resume_from)
            check_compatible(cfg, self._resume_state, self.run_dir)
        self.replay_storage = replay_storage_device(
            cfg.replay.storage, self.device, cfg.replay.capacity
        )
        replay_file = None if self._resume_from is None else self._resume_from / ckpt.REPLAY_FILE
        self._replay: ReplayBuffer | None
        if replay_file is not None and replay_file.exists():
            # Rebuilt from the file in _restore: the buffer keeps the settings its run started
            # with (e.g. the beta schedule, even when a resume extends trainer.total_steps).
            self._replay = None
        else:
            self._replay = self._make_replay()

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

    # ------------------------------------------------------------------ resume
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
        replay_file = self._resume_from / ckpt.REPLAY_FILE
        if replay_file.exists():
            try:
                self._replay = ReplayBuffer.load(
                    replay_file, device=self.device, storage_device=self.replay_storage
                )
            except ReplayLoadError as exc:
                raise ckpt.CheckpointError(
                    f"The replay buffer of checkpoint {self._resume_from} cannot be restored "
                    f"({exc}). Nothing was changed. Delete that checkpoint directory to resume "
                    "from the one before it, or set trainer.save_replay=false and move "
                    f"{replay_file.name} away to resume with an empty buffer."
                ) from exc
            # The games in progress at the checkpoint cannot be restored: their last observation
            # ends those episodes as a time-limit truncation (it bootstraps, it is not terminal).
            obs = state.get("obs")
            if obs is not None:
                n = self.cfg.env.num_envs
                zeros = np.zeros(n)
                self.replay.add(obs, zeros.astype(np.int64), zeros, zeros.astype(bool),
                                zeros.astype(bool), valid=np.zeros(n, dtype=bool))  # fmt: skip
        else:
            self._replay = self._make_replay()
            if self.cfg.trainer.save_replay:
                print(
                    f"warning: {self._resume_from} holds no replay buffer; resuming with an empty "
                    "one (learning restarts once it holds a batch).",
                    file=sys.stderr,
                )
        # Evaluation records after the checkpoint belong to the lost stretch: drop them.
        _truncate_jsonl(self.run_dir / "evaluations.jsonl", self.agent_step)

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
            "game": self.game,
            "protocol": self.cfg.env.protocol,
            "env_spec": self.env.spec_info.__dict__,
            "action_names": list(self.env.action_names),
        }

    def save_checkpoint(self) -> Path:
        write = self.replay.save if self.cfg.trainer.save_replay else None
        return ckpt.save_checkpoint(
            self.run_dir,
            self.agent_step,
            self._state(),
            write_replay=write,
            keep=self.cfg.trainer.keep_checkpoints,
        )

    # ------------------------------------------------------------------ signals
    @contextmanager
    def _signals(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            self._stop = signum

        previous = {}
        try:
            for s in STOP_SIGNALS:
                previous[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread: signals stay as they are
            previous = {}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> EvalResult:
        t = self.cfg.trainer
        if self._eval_env is None:
            self._eval_env = make_atari_env(
                self.cfg.env.game,
                protocol=self.cfg.env.protocol,
                num_envs=self.cfg.env.eval_num_envs,
                seed=self.cfg.seed + EVAL_SEED_OFFSET,
                **self.cfg.env.overrides,
            )
        # Evaluations are numbered by the period they close (the one due at step k * eval_period,
        # run at that step or a few steps after it, is number k), never by a counter that a
        # resume would have to restore.
        eval_index = self.agent_step // t.eval_period if t.eval_period else self.agent_step
        env_seed = eval_env_seed(self.cfg.seed, eval_index)
        self.agent.eval()
        try:
            result = evaluate(
                self.agent.act,
                self._eval_env,
                episodes=t.eval_episodes,
                max_steps=t.eval_steps or None,
                epsilon=t.eval_epsilon,
                should_stop=lambda: self._stop is not None,
                seed=env_seed,
            )
        finally:
            self.agent.train()
        if result.interrupted:  # a stop signal arrived: no partial evaluation is recorded
            return result
        hns = result.hns
        append_result(
            self.run_dir / "evaluations.jsonl",
            {
                "agent": self.cfg.agent_label,
                "risk": self.cfg.agent.get("risk", "neutral"),
                "risk_param": self.cfg.agent.get("risk_param"),
                "game": self.game,
                "seed": self.cfg.seed,
                "protocol": self.cfg.env.protocol,
                "agent_step": self.agent_step,
                "frames": self.agent_step * self.env.spec_info.frameskip,
                "episode_returns": result.episode_returns,
                "episode_lengths": result.episode_lengths,
                "mean_return": result.mean_return,
                "stderr_return": result.stderr_return,
                "hns": hns,
                "eval_epsilon": t.eval_epsilon,
                "eval_index": eval_index,
                "env_seed": env_seed,
                "source": "train",
            },
        )
        if self.writer is not None:
            step = self.agent_step
            self.writer.scalar("eval/episodic_return", result.mean_return, step)
            self.writer.scalar("eval/episodic_return_stderr", result.stderr_return, step)
            self.writer.scalar("eval/episodes", len(result.episode_returns), step)
            if hns is not None:
                self.writer.scalar("eval/hns", hns, step)
        return result

    def _evaluation_missed(self) -> bool:
        """Whether the last evaluation due at or before this step has no record (a stop signal
        interrupted it; records after the checkpoint were already dropped by ``_restore``)."""
        period = self.cfg.trainer.eval_period
        due = self.agent_step // period * period if period else 0
        if due <= 0:
            return False
        path = self.run_dir / "evaluations.jsonl"
        recorded = 0
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    recorded = max(recorded, int(json.loads(line).get("agent_step", 0)))
                except (json.JSONDecodeError, TypeError, ValueError):
                    continue
        return recorded < due

    def _job_label(self) -> str:
        """What the progress bar names: game, agent, seed and, for a run in a settings
        directory (``<game>-<agent>-seed<seed>/<settings>``), those settings in full."""
        cfg = self.cfg
        label = f"{self.game} {cfg.agent_label} seed{cfg.seed}"
        parent = self.run_dir.resolve().parent.name
        if parent.startswith(f"{self.game}-") and parent.endswith(f"-seed{cfg.seed}"):
            label += f" {self.run_dir.name}"
        return label

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainSummary:
        cfg, t, lg = self.cfg, self.cfg.trainer, self.cfg.logger
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self._resume_from is not None
        if resumed:
            self._restore()
        (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        self.writer = MetricWriter(
            self.run_dir / "tb" if lg.tensorboard else None,
            purge_step=self.agent_step if resumed else None,
        )
        if not resumed:
            self.writer.text("config", "```\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```", 0)
            self.writer.text("agent/hparams", _markdown_table(self.agent.hparams), 0)
        n_envs = cfg.env.num_envs
        obs, _ = self.env.reset(seed=cfg.seed + (self.agent_step if resumed else 0))
        self.obs = obs
        progress = _progress(t.total_steps, self.agent_step, lg.progress, self._job_label())
        last_eval: EvalResult | None = None
        next_eval = _next_multiple(self.agent_step, t.eval_period)
        next_ckpt = _next_multiple(self.agent_step, t.checkpoint_period)
        next_log = _next_multiple(self.agent_step, lg.log_period)
        next_dist = _next_multiple(max(self.agent_step, t.learning_starts), lg.distribution_period)
        metrics = _MetricWindow()
        window_start, window_steps = time.perf_counter(), 0
        latest_return = float("nan")
        with self._signals():
            if resumed and self._evaluation_missed():
                # The evaluation due at the checkpoint was cut short by the stop signal (none
                # is recorded then): play it now, at the same agent step.
                last_eval = self.evaluate()
            while self.agent_step < t.total_steps and self._stop is None:
                # ---- act
                epsilon = linear_epsilon(
                    self.agent_step,
                    start=t.epsilon_start,
                    end=t.epsilon_end,
                    decay_steps=t.epsilon_decay_steps,
                    warmup=t.learning_starts,
                )
                if self.agent_step < t.learning_starts:
                    actions = self.rng.integers(0, self.num_actions, n_envs)
                else:
                    actions = self.agent.act(obs, epsilon)
                if t.overlap:
                    # The games advance in ale-py's C++ threads while the learner updates; the
                    # updates see the replay without this step's transitions (one step later).
                    self.env.send(actions)
                    self._learn_due(metrics)
                    next_obs, reward, terminated, truncated, info = self.env.recv()
                else:
                    next_obs, reward, terminated, truncated, info = self.env.step(actions)
                valid = ~info["autoreset"]
                learn_reward = info["clipped_reward"] if t.reward_clip else reward
                self.replay.add(obs, actions, learn_reward, terminated, truncated, valid=valid)
                obs = self.obs = next_obs
                new_steps = int(valid.sum())
                self.agent_step += new_steps
                window_steps += new_steps
                progress.update(new_steps)
                if "episode" in info:
                    for i in np.flatnonzero(info["_episode"]):
                        latest_return = float(info["episode"]["r"][i])
                        self.writer.scalar("charts/episodic_return", latest_return, self.agent_step)
                        self.writer.scalar(
                            "charts/episodic_length", info["episode"]["l"][i], self.agent_step
                        )
                        if has_reference_scores(self.game):
                            hns = human_normalized_score(self.game, latest_return)
                            self.writer.scalar("charts/episodic_hns", hns, self.agent_step)

                # ---- learn: keep the replay ratio whatever num_envs is
                if self.agent_step >= t.learning_starts and len(self.replay) >= t.batch_size:
                    if self.fixed_states is None and lg.distribution_states > 0:
                        k = min(lg.distribution_states, len(self.replay))
                        self.fixed_states = self.replay.sample(k).obs.cpu().numpy()
                    self.update_credit += new_steps / t.update_period
                    if not t.overlap:
                        self._learn_due(metrics)
                    if self.agent_step - self.last_sync >= t.target_update_period:
                        self.agent.sync_target()
                        self.last_sync = self.agent_step - (
                            (self.agent_step - self.last_sync) % t.target_update_period
                        )

                # ---- periodic work
                if self.agent_step >= next_log:
                    next_log = _next_multiple(self.agent_step, lg.log_period)
                    elapsed = max(time.perf_counter() - window_start, 1e-9)
                    sps = window_steps / elapsed
                    w = self.writer
                    w.scalar("charts/SPS", sps, self.agent_step)
                    w.scalar("charts/updates_per_second", metrics.count / elapsed, self.agent_step)
                    w.scalar("charts/epsilon", epsilon, self.agent_step)
                    w.scalar("charts/replay_size", len(self.replay), self.agent_step)
                    w.scalar("charts/frames", self.agent_step * 4, self.agent_step)
                    w.scalar("charts/learning_rate", self.agent.lr, self.agent_step)
                    if getattr(self.replay, "prioritized", False):
                        w.scalar("charts/replay_beta", self.replay.beta, self.agent_step)
                    for key, value in metrics.means().items():
                        w.scalar(f"losses/{key}", value, self.agent_step)
                    metrics = _MetricWindow()
                    window_start, window_steps = time.perf_counter(), 0
                    progress.set_postfix(
                        sps=f"{sps:.0f}", ret=f"{latest_return:.1f}", eps=f"{epsilon:.3f}",
                        refresh=False,
                    )  # fmt: skip
                if self.fixed_states is not None and self.agent_step >= next_dist:
                    next_dist = _next_multiple(self.agent_step, lg.distribution_period)
                    self._log_distributions()
                if t.eval_period and self.agent_step >= next_eval:
                    next_eval = _next_multiple(self.agent_step, t.eval_period)
                    last_eval = self.evaluate()
                    if lg.progress and not last_eval.interrupted:
                        eval_hns = last_eval.hns
                        progress.write(
                            f"eval @ {self.agent_step:,} agent steps: "
                            f"{len(last_eval.episode_returns)} games, raw score "
                            f"{last_eval.mean_return:.1f}"
                            + ("" if eval_hns is None else f", human-normalized {eval_hns:.3f}")
                        )
                if t.checkpoint_period and self.agent_step >= next_ckpt:
                    next_ckpt = _next_multiple(self.agent_step, t.checkpoint_period)
                    self.save_checkpoint()
        progress.close()
        finished = self.agent_step >= t.total_steps
        stopped_by = None if self._stop is None else signal.Signals(self._stop).name
        if stopped_by is not None:
            print(
                f"{stopped_by} received at agent step {self.agent_step}: writing a checkpoint.",
                file=sys.stderr,
            )
        last = ckpt.latest_checkpoint(self.run_dir)
        if last is None or not last.name.endswith(f"{self.agent_step:012d}"):
            self.save_checkpoint()
        self.writer.close()
        return TrainSummary(
            run_dir=self.run_dir,
            agent_step=self.agent_step,
            num_updates=self.agent.num_updates,
            finished=finished,
            stopped_by=stopped_by,
            last_eval=last_eval,
        )

    def _learn_due(self, metrics: _MetricWindow) -> None:
        """Run the gradient updates the replay ratio owes (``update_credit``)."""
        t = self.cfg.trainer
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.replay.sample(t.batch_size)
            result = self.agent.learn(batch)
            if self.cfg.replay.prioritized:
                self.replay.update_priorities(batch.indices, result.loss)
            metrics.add(result)

    def _log_distributions(self) -> None:
        from distrl_agents.evaluation.distribution_plot import distribution_figure

        assert self.fixed_states is not None and self.writer is not None
        with torch.no_grad():
            obs = torch.as_tensor(self.fixed_states)
            dist = self.agent.distribution(self.agent.online, obs)
        for k in range(obs.shape[0]):
            fig = distribution_figure(
                dist, k, frame=self.fixed_states[k, -1], action_names=self.env.action_names
            )
            self.writer.figure(f"distributions/state_{k}", fig, self.agent_step)

    def close(self) -> None:
        self.env.close()
        if self._eval_env is not None:
            self._eval_env.close()
        torch.set_num_threads(self._torch_threads_before)


class _MetricWindow:
    """Sums of the agents' scalar metrics since the last log point.

    Device-side metrics (``LearnResult.metric_values``) are summed on the device and read back
    once, in :meth:`means`, so that logging costs no host-device sync per update.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.device_sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.count = 0

    def add(self, result: LearnResult) -> None:
        if result.metric_values is not None:
            names, values = result.metric_names, result.metric_values.detach()
            total = self.device_sums.get(names)
            self.device_sums[names] = values.clone() if total is None else total.add_(values)
        else:
            for key, value in result.metrics.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        sums = dict(self.sums)
        for names, total in self.device_sums.items():
            for key, value in zip(names, total.tolist()):
                sums[key] = sums.get(key, 0.0) + value
        return {k: v / max(self.count, 1) for k, v in sums.items()}


def _next_multiple(step: int, period: int) -> int:
    if period <= 0:
        return math.inf  # type: ignore[return-value]
    return (step // period + 1) * period


def check_writable_dir(path: Path) -> None:
    """Raise ``ValueError`` (with what to do) unless ``path`` is, or can be created as, a
    directory this process may write in. Writes nothing: checked before any set-up."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"The run directory {path} cannot be created: {existing} is a file, not a "
            "directory. Choose another run_dir (or name)."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only_fs(existing) else "is not writable"
        raise ValueError(
            f"The run directory {path} cannot be written: {existing} {reason}. Choose a "
            "run_dir (or a working directory) you can write to."
        )


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _truncate_jsonl(path: Path, max_step: int) -> None:
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("agent_step", 0) <= max_step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    os.replace(tmp, path)


def _markdown_table(values: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in values.items())
    return "| hyperparameter | value |\n|---|---|\n" + rows


def _progress(total: int, initial: int, enabled: bool, label: str):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        disable=not enabled,
        desc=label,
    )
