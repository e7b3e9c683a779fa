"""Batched Atari environments on ale-py's C++ ``AtariVectorEnv``, under the published protocols.

The C++ vector env does the standard preprocessing (Mnih et al. 2015; Machado et al. 2018): an
action repeated for 4 frames, max-pool over the last two frames, 84x84 grayscale, a stack of the
last 4 processed frames, and the 108,000-frame (30 minute) episode cap. This module chooses the
protocol, keeps the game's raw rewards, and adds per-env whole-game statistics.

Protocols
---------
``machado`` (Machado et al. 2018, "Revisiting the ALE"; Dopamine's default)
    sticky actions with p = 0.25, no no-op starts, no fire on reset, no loss-of-life terminal,
    minimal action set.
``nature`` (DQN, C51, QR-DQN, IQN and FQF papers)
    no sticky actions, 1-30 random no-op starts, no FIRE on reset (as DeepMind's Lua ``alewrap``,
    Dopamine's ``AtariPreprocessing`` and the FQF authors' code: the agent learns to press FIRE;
    OpenAI Baselines' ``FireResetEnv`` is the override ``use_fire_reset=True``), and the loss of a
    life is a terminal *for learning* (``terminated`` is set) while the game itself goes on until
    game over. Rewards for learning are clipped to [-1, 1] by the learner in both.

What ``step`` returns
---------------------
``obs`` uint8 ``[num_envs, 4, 84, 84]``; ``reward`` float32 raw game reward (unclipped);
``terminated`` the learning terminal (game over, plus life loss under ``nature``); ``truncated``
the frame cap; ``info`` with, per env:

* ``clipped_reward``: ``sign``-clipped reward in [-1, 1], what the learner sees;
* ``autoreset``: True when this step did not advance the game but started a new one (see below);
* ``lives``, ``episode_frame_number``, ``env_id`` from ale-py;
* ``episode`` / ``_episode``: when a whole game has just ended, ``episode["r"]`` is its raw score
  (all lives, unclipped), ``episode["l"]`` its length in agent steps, and ``episode["f"]`` in
  frames; ``_episode`` marks which envs carry one (gymnasium's vector-statistics convention).

Autoreset
---------
ale-py's vector env uses gymnasium's *next-step* autoreset: the call after a game over or a
truncation ignores the action, resets that env and returns the first observation of the new game
with reward 0. Such a step is **not a transition**: ``info["autoreset"]`` marks it, and the
observation held before it is the final observation of the finished game. The training loop passes
``valid = ~info["autoreset"]`` to the replay buffer, so no stored transition spans two games; a
whole-game score is reported on that autoreset step.

Under ``nature`` a terminal may be a life loss (the game goes on) or the game over. ale-py does not
say which, so the next step decides: the game restarted when that env's
``episode_frame_number`` did not advance by exactly ``frameskip`` frames (a reset restarts the
counter from the no-op frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ale_py import Action
from ale_py.vector_env import AtariVectorEnv
from gymnasium.vector import AutoresetMode, VectorEnv

from distrl_agents.envs.games import resolve_game

PROTOCOLS: dict[str, dict[str, Any]] = {
    # Machado et al. 2018, Sec. 5 recommendations; Dopamine's atari_lib defaults.
    "machado": {
        "repeat_action_probability": 0.25,
        "noop_max": 0,
        "use_fire_reset": False,
        "terminal_on_life_loss": False,
        "full_action_space": False,
    },
    # Mnih et al. 2015 (Nature DQN) evaluation/training protocol, used by C51, QR-DQN, IQN, FQF.
    "nature": {
        "repeat_action_probability": 0.0,
        "noop_max": 30,
        # No FIRE on reset: DeepMind's Lua alewrap, Dopamine's AtariPreprocessing, Kaixhin's DER
        # environment and the FQF authors' Dopamine fork press none (Baselines' FireResetEnv does).
        "use_fire_reset": False,
        "terminal_on_life_loss": True,
        "full_action_space": False,
    },
}

#: Settings a user may override, with a check and a description of the valid values.
_OVERRIDES: dict[str, tuple[Any, str]] = {
    "repeat_action_probability": (lambda v: 0.0 <= float(v) <= 1.0, "a float in [0, 1]"),
    "noop_max": (lambda v: int(v) == v and int(v) >= 0, "an integer >= 0"),
    "use_fire_reset": (lambda v: isinstance(v, bool), "true or false"),
    "terminal_on_life_loss": (lambda v: isinstance(v, bool), "true or false"),
    "full_action_space": (lambda v: isinstance(v, bool), "true or false"),
    "max_num_frames_per_episode": (lambda v: int(v) == v and int(v) > 0, "an integer > 0"),
    "frameskip": (lambda v: int(v) == v and int(v) > 0, "an integer > 0"),
    "num_threads": (lambda v: int(v) == v and int(v) >= 0, "an integer >= 0 (0 = auto)"),
    "thread_affinity_offset": (lambda v: int(v) == v and int(v) >= -1, "an integer >= -1"),
    "batch_size": (lambda v: int(v) == v and int(v) >= 0, "an integer >= 0 (0 = num_envs)"),
}

#: Frame cap per episode: 108,000 frames = 30 minutes of play (Machado et al. 2018).
MAX_FRAMES_PER_EPISODE = 108_000


@dataclass(frozen=True)
class EnvSpec:
    """Everything that defines the environment of a run (saved in checkpoints and results)."""

    game: str
    protocol: str
    repeat_action_probability: float
    noop_max: int
    use_fire_reset: bool
    terminal_on_life_loss: bool
    full_action_space: bool
    max_num_frames_per_episode: int
    frameskip: int


def _validate_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise ValueError(
                f"Unknown Atari environment setting {key!r}. Valid settings: "
                f"{', '.join(sorted(_OVERRIDES))}."
            )
        check, what = _OVERRIDES[key]
        try:
            ok = bool(check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"Invalid value {value!r} for Atari setting {key!r}: expected {what}.")
        out[key] = value
    return out


def _settings(protocol: str, num_envs: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The protocol's settings and the defaults, with the (checked) ``overrides`` applied."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"Unknown protocol {protocol!r}. Valid protocols: {', '.join(sorted(PROTOCOLS))} "
            "(machado = sticky actions, Dopamine's default; nature = no-op starts and "
            "life-loss terminals, as in the DQN/C51/QR-DQN/IQN/FQF papers)."
        )
    if int(num_envs) != num_envs or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}.")
    settings: dict[str, Any] = {
        **PROTOCOLS[protocol],
        "max_num_frames_per_episode": MAX_FRAMES_PER_EPISODE,
        "frameskip": 4,
        "num_threads": 0,
        "thread_affinity_offset": -1,
        "batch_size": 0,
    }
    settings.update(_validate_overrides(overrides))
    return settings


def _env_spec(rom: str, protocol: str, settings: dict[str, Any]) -> EnvSpec:
    return EnvSpec(
        game=rom,
        protocol=protocol,
        repeat_action_probability=float(settings["repeat_action_probability"]),
        noop_max=int(settings["noop_max"]),
        use_fire_reset=bool(settings["use_fire_reset"]),
        terminal_on_life_loss=bool(settings["terminal_on_life_loss"]),
        full_action_space=bool(settings["full_action_space"]),
        max_num_frames_per_episode=int(settings["max_num_frames_per_episode"]),
        frameskip=int(settings["frameskip"]),
    )


def _vector_env(spec: EnvSpec, num_envs: int, settings: dict[str, Any]) -> AtariVectorEnv:
    """ale-py's vector env for ``spec``: raw scores, and life losses reported, never reset."""
    return AtariVectorEnv(
        spec.game,
        num_envs,
        num_threads=int(settings["num_threads"]),
        thread_affinity_offset=int(settings["thread_affinity_offset"]),
        max_num_frames_per_episode=spec.max_num_frames_per_episode,
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=spec.full_action_space,
        autoreset_mode=AutoresetMode.NEXT_STEP,
        frameskip=spec.frameskip,
        noop_max=spec.noop_max,
        use_fire_reset=spec.use_fire_reset,
        episodic_life=False,  # never reset the game at a life loss (not the papers' protocol)
        life_loss_info=spec.terminal_on_life_loss,
        reward_clipping=False,  # raw scores here; the learner clips
    )


def clip_reward(reward: np.ndarray) -> np.ndarray:
    """Clip rewards to [-1, 1] as the DQN-family papers do for learning (Mnih et al. 2015)."""
    return np.clip(reward, -1.0, 1.0).astype(np.float32, copy=False)


class AtariEnv(VectorEnv):
    """``num_envs`` Atari games stepped together by ale-py's C++ threads (gymnasium vector API)."""

    def __init__(
        self, game: str, *, protocol: str = "machado", num_envs: int = 1, seed: int = 0, **overrides
    ) -> None:
        settings = _settings(protocol, num_envs, overrides)
        self.spec_info = _env_spec(resolve_game(game), protocol, settings)
        if int(settings["batch_size"]) not in (0, num_envs):
            raise ValueError(
                "batch_size other than num_envs (ale-py's asynchronous partial batches) is not "
                "supported by AtariEnv; leave it at 0."
            )
        self.env = _vector_env(self.spec_info, int(num_envs), settings)
        self.num_envs = int(num_envs)
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}
        self.seed = int(seed)
        # ale_py's stubs declare Action(value: int); at runtime Action is an Enum, and calling it
        # with a member (what get_action_set returns) gives that member.
        self.action_names: tuple[str, ...] = tuple(
            Action(a).name  # type: ignore[arg-type]
            for a in self.env.ale.get_action_set()
        )
        n = self.num_envs
        self._ep_return = np.zeros(n, dtype=np.float64)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._ended = np.zeros(n, dtype=bool)  # last step was terminated or truncated
        self._truncated = np.zeros(n, dtype=bool)
        self._last_frame_number = np.zeros(n, dtype=np.int64)
        self._has_reset = False
        self._pending = False

    @property
    def num_actions(self) -> int:
        return int(self.single_action_space.n)  # type: ignore[attr-defined]

    @property
    def game(self) -> str:
        return self.spec_info.game

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; env ``i`` is seeded with ``seed + i`` (default: the constructor seed)."""
        if options:
            raise ValueError(
                "AtariEnv.reset takes no options; partial resets happen automatically."
            )
        if self._pending:
            self.env.recv()
            self._pending = False
        obs, info = self.env.reset(seed=self.seed if seed is None else int(seed))
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._ended[:] = False
        self._truncated[:] = False
        self._last_frame_number[:] = info["episode_frame_number"]
        self._has_reset = True
        info = dict(info)
        info["autoreset"] = np.zeros(self.num_envs, dtype=bool)
        return obs, info

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.send(actions)
        return self.recv()

    def send(self, actions: np.ndarray) -> None:
        """Start stepping every env with ``actions``; ale-py's C++ threads run while the caller
        does other work (e.g. a learning update) until :meth:`recv`."""
        if not self._has_reset:
            raise RuntimeError("Call reset() before step().")
        if self._pending:
            raise RuntimeError("send() called twice without recv().")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},), got "
                f"{actions.dtype} {actions.shape}."
            )
        self.env.send(actions.astype(np.int64, copy=False))
        self._pending = True

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; returns what :meth:`step` returns."""
        if not self._pending:
            raise RuntimeError("recv() called without send().")
        obs, reward, terminated, truncated, info = self.env.recv()
        self._pending = False
        frame_number = info["episode_frame_number"].astype(np.int64)
        if self.spec_info.terminal_on_life_loss:
            # A terminal may be a life loss: the game restarted only if the frame counter did.
            restarted = frame_number != self._last_frame_number + self.spec_info.frameskip
            autoreset = self._truncated | (self._ended & restarted)
        else:
            autoreset = self._ended.copy()
        reward = reward.astype(np.float32)
        info = dict(info)
        info["autoreset"] = autoreset
        info["clipped_reward"] = clip_reward(reward)
        if autoreset.any():
            info["episode"] = {
                "r": np.where(autoreset, self._ep_return, 0.0),
                "l": np.where(autoreset, self._ep_length, 0),
                "f": np.where(autoreset, self._last_frame_number, 0),
            }
            info["_episode"] = autoreset.copy()
            self._ep_return[autoreset] = 0.0
            self._ep_length[autoreset] = 0
        live = ~autoreset
        self._ep_return[live] += reward[live]
        self._ep_length[live] += 1
        self._ended = terminated | truncated
        self._truncated = truncated.copy()
        self._last_frame_number = frame_number
        return obs, reward, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self.env.close()

    def __repr__(self) -> str:
        s = self.spec_info
        return f"AtariEnv({s.game!r}, protocol={s.protocol!r}, num_envs={self.num_envs})"


def make_atari_env(
    game: str, *, protocol: str = "machado", num_envs: int = 1, seed: int = 0, **overrides: Any
) -> AtariEnv:
    """Build ``num_envs`` batched Atari games under a published protocol.

    Args:
        game: any ale-py ROM, by ROM id or gymnasium id (``breakout``, ``MsPacman``,
            ``ALE/Breakout-v5``).
        protocol: ``"machado"`` (sticky actions) or ``"nature"`` (no-op starts, life-loss terminal).
        num_envs: number of games stepped together in one batch.
        seed: env ``i`` is seeded with ``seed + i``.
        **overrides: any of ``repeat_action_probability``, ``noop_max``, ``use_fire_reset``,
            ``terminal_on_life_loss``, ``full_action_space``, ``max_num_frames_per_episode``,
            ``frameskip``, ``num_threads``, ``thread_affinity_offset``.

    Observations are uint8 ``[num_envs, 4, 84, 84]``; see the module docstring for the meaning of
    rewards, terminals and ``info``.
    """
    return AtariEnv(game, protocol=protocol, num_envs=num_envs, seed=seed, **overrides)
