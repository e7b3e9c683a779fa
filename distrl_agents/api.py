"""The Python API: load a trained agent and play or inspect it; start or resume a training run.

Everything here is quiet unless asked (``verbose=True``): what the library would print (the
precision it resolved, the progress bar) is kept in the returned object's ``log`` instead.
Mistakes raise ``ValueError`` with what to do. See ``docs/python_api.md`` for examples.

* :func:`load_agent` -> :class:`LoadedAgent` (``act``, ``distribution``, ``q_values``,
  ``evaluate``, ``make_env``) from a run directory or a checkpoint;
* :func:`compose_config` -> the :class:`~distrl_agents.training.config.RunConfig` of a
  ``distrl-train`` command line; :func:`load_config` -> a run's saved config;
* :func:`train` -> :class:`TrainResult`: start a run, or resume the one in its directory.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from distrl_agents.distribution import ReturnDistribution
    from distrl_agents.envs import AtariEnv
    from distrl_agents.evaluation.evaluator import EvalResult
    from distrl_agents.training.config import RunConfig

__all__ = [
    "LoadedAgent",
    "TrainResult",
    "compose_config",
    "load_agent",
    "load_checkpoint",
    "load_config",
    "train",
]

#: Evaluation games are seeded ``run seed + EVAL_SEED_OFFSET`` by default, as ``distrl-eval``.
EVAL_SEED_OFFSET = 20_000


@contextlib.contextmanager
def _captured(verbose: bool) -> Iterator[io.StringIO]:
    """What is printed inside, on the terminal (``verbose``) or kept in the yielded buffer."""
    buffer = io.StringIO()
    if verbose:
        yield buffer
        return
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


# ------------------------------------------------------------------------------------ loading


def load_checkpoint(path: str | os.PathLike[str], device: str = "auto") -> tuple[Any, Any, Any]:
    """Rebuild the agent of a checkpoint on ``device``: ``(agent, RunConfig, state)``, the agent
    in eval mode (noisy layers act with their mean weights). ``path`` is a run directory (its
    newest checkpoint), a checkpoint directory or its ``state.pt``. What :func:`load_agent`
    wraps; ``distrl-eval`` uses it too."""
    from distrl_agents.training import checkpoint as ckpt
    from distrl_agents.training.agent_factory import build_agent, resolve_settings
    from distrl_agents.training.config import RunConfig
    from distrl_agents.training.device import resolve_device

    checkpoint = ckpt.find_checkpoint(path)
    dev = resolve_device(device)
    state = ckpt.load_state(checkpoint, map_location=dev)
    cfg = RunConfig.from_dict(state["config"])
    cfg.trainer.compile = "off"
    num_actions, obs_shape = len(state["action_names"]), (4, 84, 84)
    # The precisions the run recorded (a run's own, whatever trainer.precision=auto says now).
    settings = resolve_settings(
        cfg, num_actions=num_actions, obs_shape=obs_shape, device=dev, recorded=state
    )
    agent = build_agent(
        cfg, num_actions=num_actions, obs_shape=obs_shape, device=dev, settings=settings
    )
    agent.load_state_dict(state["agent"])
    agent.eval()
    return agent, cfg, state


@dataclass
class LoadedAgent:
    """A trained agent with its run's settings (from :func:`load_agent`)."""

    #: the :class:`~distrl_agents.agents.base.Agent` itself (``agent.online``: its network)
    agent: Any
    #: the run's :class:`~distrl_agents.training.config.RunConfig`
    config: RunConfig
    #: the checkpoint directory it was loaded from, and the run directory holding it
    checkpoint: Path
    run_dir: Path
    #: agent steps the agent was trained for
    agent_step: int
    #: the game's action names, by action index (``NOOP``, ``FIRE``, ...)
    action_names: tuple[str, ...]
    #: what loading printed (the precision choice, ...), kept unless ``verbose=True``
    log: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return (
            f"LoadedAgent({self.config.agent_label} on {self.game}, {self.agent_step:,} agent "
            f"steps, checkpoint {str(self.checkpoint)!r}, device {self.device})"
        )

    @property
    def game(self) -> str:
        return str(self.config.env.game)

    @property
    def device(self) -> torch.device:
        return self.agent.device

    def act(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """Actions (int64 ``[N]``) for observations ``[N, 4, 84, 84]`` (uint8, as the
        environments give them; one ``[4, 84, 84]`` is a batch of one): greedy, or random with
        probability ``epsilon``. Greedy means the agent's action value (the expected return, or
        the run's risk measure, ``agent.risk``)."""
        return np.asarray(self.agent.act(np.asarray(obs), epsilon))

    def distribution(self, obs: np.ndarray) -> ReturnDistribution:
        """The predicted return distribution of every action (on the CPU, float32):
        ``values`` and ``probs`` ``[N, A, K]`` (K atoms: C51's support and probabilities,
        quantile values with weights 1/K, FQF's with their fraction widths, expectiles for the
        expectile agent), ``taus`` ``[N, K]`` for quantile and expectile agents. IQN draws its
        quantile levels afresh on each call."""
        import torch

        from distrl_agents.distribution import ReturnDistribution

        obs_t = torch.as_tensor(np.asarray(obs))
        if obs_t.dim() == 3:
            obs_t = obs_t.unsqueeze(0)
        with torch.no_grad():
            dist = self.agent.distribution(self.agent.online, obs_t)
        return ReturnDistribution(
            values=dist.values.float().cpu(),
            probs=dist.probs.float().cpu(),
            taus=None if dist.taus is None else dist.taus.float().cpu(),
        )

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Expected returns ``[N, A]`` (the mean of each action's distribution)."""
        return self.distribution(obs).q_values().numpy()

    def make_env(
        self, num_envs: int = 1, seed: int | None = None, protocol: str | None = None
    ) -> AtariEnv:
        """Environments with the run's game and settings (``protocol``: the run's unless given;
        ``seed``: the run's seed + 20000 unless given, as ``distrl-eval``)."""
        from distrl_agents.envs import make_atari_env

        cfg = self.config
        return make_atari_env(
            cfg.env.game,
            protocol=protocol or cfg.env.protocol,
            num_envs=num_envs,
            seed=cfg.seed + EVAL_SEED_OFFSET if seed is None else seed,
            **cfg.env.overrides,
        )

    def evaluate(
        self,
        episodes: int = 10,
        *,
        num_envs: int = 4,
        epsilon: float = 0.001,
        max_steps: int | None = None,
        seed: int | None = None,
        protocol: str | None = None,
        record: bool = False,
        progress: bool = False,
    ) -> EvalResult:
        """Play ``episodes`` whole games as ``distrl-eval`` does (nothing is written): raw
        scores in ``.episode_returns``, ``.mean_return``, ``.hns``, and how many games the frame
        cap cut in ``.truncated_games``. ``record=True`` keeps the first game's frames
        (``.observations``) and actions (``.actions``); ``progress=True`` shows a bar."""
        from distrl_agents.cli.eval import GameProgress
        from distrl_agents.evaluation.evaluator import evaluate

        if episodes < 1 or num_envs < 1 or not 0.0 <= epsilon <= 1.0:
            raise ValueError("episodes and num_envs must be >= 1 and epsilon in [0, 1]")
        env = self.make_env(num_envs, seed, protocol)
        try:
            with GameProgress(episodes, env.spec_info, enabled=progress) as bar:
                return evaluate(
                    self.agent.act,
                    env,
                    episodes=episodes,
                    max_steps=max_steps,
                    epsilon=epsilon,
                    record_env=0 if record else None,
                    on_step=bar.steps if progress else None,
                    on_game=bar.games if progress else None,
                    on_long_game=bar.long_game if progress else None,
                )
        finally:
            env.close()


def load_agent(
    path: str | os.PathLike[str], device: str = "auto", verbose: bool = False
) -> LoadedAgent:
    """The trained agent of a run directory (its newest checkpoint), a checkpoint directory
    (``<run>/checkpoints/step_000000250000``) or its ``state.pt``, on ``device`` (``auto``,
    ``cpu``, ``cuda``). A checkpoint trained on a GPU loads on the CPU."""
    from distrl_agents.training import checkpoint as ckpt

    checkpoint = ckpt.find_checkpoint(path)
    with _captured(verbose) as out:
        agent, cfg, state = load_checkpoint(checkpoint, device)
    return LoadedAgent(
        agent=agent,
        config=cfg,
        checkpoint=checkpoint,
        run_dir=checkpoint.parent.parent,
        agent_step=int(state["agent_step"]),
        action_names=tuple(state["action_names"]),
        log=out.getvalue(),
    )


# ------------------------------------------------------------------------------------ training


def compose_config(*overrides: str) -> RunConfig:
    """The run config of ``distrl-train <overrides>``, e.g.
    ``compose_config("experiment=smoke", "agent=iqn", "env.game=pong")``; the same presets,
    groups and checks (a misspelled field or a value out of range raises ``ValueError``)."""
    from distrl_agents.cli.compose import compose_raw_config
    from distrl_agents.envs.games import resolve_game
    from distrl_agents.training.config import RunConfig

    raw = compose_raw_config(list(overrides))
    raw.setdefault("env", {})["game"] = resolve_game(str(raw["env"]["game"]))
    return RunConfig.from_dict(raw)


def load_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """The config a run directory was trained with (its ``config.json``): change its
    ``trainer.total_steps`` and pass it to :func:`train` with the same directory to go on."""
    import json

    from distrl_agents.training.config import RunConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(
            f"{run_dir} holds no config.json: give the directory of a training run (it holds "
            "config.json and checkpoints/)"
        )
    return RunConfig.from_dict(json.loads(path.read_text()))


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    #: agent steps and gradient updates done in all (a resumed run counts from its start)
    agent_step: int
    num_updates: int
    #: whether ``trainer.total_steps`` was reached; else the signal that stopped it
    finished: bool
    stopped_by: str | None
    #: whether it went on from a checkpoint in ``run_dir``
    resumed: bool
    #: the last periodic evaluation of this call, if one ran
    last_eval: EvalResult | None
    #: what training printed (precision choices, evaluation lines), unless ``verbose=True``
    log: str = field(default="", repr=False)


def train(
    config: RunConfig | Mapping[str, Any],
    run_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = False,
    verbose: bool = False,
) -> TrainResult:
    """Train ``config`` (a :class:`~distrl_agents.training.config.RunConfig` or its dict, e.g.
    from :func:`compose_config` or :func:`load_config`) in ``run_dir``, to
    ``trainer.total_steps`` or until Ctrl-C (which writes a checkpoint and returns).

    A ``run_dir`` that holds checkpoints of this run is resumed from the newest one (with a
    larger ``trainer.total_steps``, training goes on); one of another run is refused with a
    message, never overwritten. Default ``run_dir``: the config's ``run_dir``, else
    ``runs/<name>/<game>-<agent>-seed<seed>``, as ``distrl-train``. ``progress=True`` shows the
    progress bar (and the evaluation lines) whatever ``logger.progress`` says.
    """
    from distrl_agents.training.config import RunConfig
    from distrl_agents.training.loop import Trainer
    from distrl_agents.training.sweep import job_subdir

    if isinstance(config, RunConfig):
        cfg = copy.deepcopy(config)
        cfg.validate()
    elif isinstance(config, Mapping):
        cfg = RunConfig.from_dict(dict(config))
    else:
        raise ValueError(
            f"config must be a RunConfig or a dict, got {type(config).__name__}; build one with "
            "distrl_agents.compose_config(...) or distrl_agents.load_config(run_dir)"
        )
    cfg.logger.progress = progress
    if run_dir is None:
        run_dir = cfg.run_dir or Path("runs") / cfg.name / job_subdir(
            cfg.env.game, cfg.agent_name, cfg.seed
        )
    with _captured(verbose or progress) as out:
        trainer = Trainer(cfg, run_dir)
        try:
            resumed = trainer._resume_from is not None
            summary = trainer.run()
        finally:
            trainer.close()
    return TrainResult(
        run_dir=Path(run_dir),
        agent_step=summary.agent_step,
        num_updates=summary.num_updates,
        finished=summary.finished,
        stopped_by=summary.stopped_by,
        resumed=resumed,
        last_eval=summary.last_eval,
        log=out.getvalue(),
    )
