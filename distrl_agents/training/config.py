"""Typed run configuration, checked before any work starts.

The Hydra CLI composes YAML into a plain dict; :func:`RunConfig.from_dict` turns it into these
dataclasses and reports the first impossible value with the field's full name and what is valid.
Library code receives these objects (or keyword arguments), never the global Hydra config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from distrl_agents.config_values import ConversionError, convert_fields


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field and the fix."""


@dataclass
class EnvConfig:
    game: str = "kung_fu_master"
    protocol: str = "machado"
    num_envs: int = 1
    eval_num_envs: int = 4
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    n_step: int = 1
    prioritized: bool = False
    alpha: float = 0.5
    beta: float = 0.4
    beta_steps: int | None = None
    priority_eps: float = 1e-6
    storage: str = "auto"


@dataclass
class TrainerConfig:
    total_steps: int = 50_000_000
    device: str = "auto"
    precision: str = "auto"
    compile: str = "off"
    channels_last: str = "auto"
    overlap: bool = True
    torch_threads: int = 0
    batch_size: int = 32
    gamma: float = 0.99
    update_period: float = 4.0
    target_update_period: int = 10_000
    learning_starts: int = 50_000
    warmup_actions: str = "uniform"
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_decay_steps: int = 1_000_000
    reward_clip: bool = True
    eval_period: int = 250_000
    eval_episodes: int = 10
    eval_steps: int = 125_000
    eval_last_game: str = "drop"
    eval_epsilon: float = 0.001
    checkpoint_period: int = 250_000
    checkpoint_minutes: float = 0.0
    keep_checkpoints: int = 2
    save_replay: bool = True


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    progress: bool = True
    log_period: int = 1000
    distribution_period: int = 100_000
    distribution_states: int = 3


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    agent: dict[str, Any]
    network: dict[str, Any] = field(default_factory=dict)
    env: EnvConfig = field(default_factory=EnvConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    name: str = "default"
    seed: int = 0
    run_dir: str | None = None

    @property
    def agent_name(self) -> str:
        return str(self.agent["name"])

    @property
    def agent_label(self) -> str:
        """The agent's name in results and reports; risk-sensitive acting is part of it
        (``iqn+cvar0.25``), so reports never pool it with the risk-neutral agent."""
        risk = self.agent.get("risk", "neutral")
        if risk == "neutral":
            return self.agent_name
        param = self.agent.get("risk_param")
        return f"{self.agent_name}+{risk}" + ("" if param is None else f"{param:g}")

    @property
    def agent_hparams(self) -> dict[str, Any]:
        return {k: v for k, v in self.agent.items() if k != "name"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        raw = dict(raw)
        for extra in ("resume", "experiment", "resolved"):  # resolved: what a run decided
            raw.pop(extra, None)
        agent = raw.pop("agent", None)
        if not isinstance(agent, dict) or "name" not in agent:
            raise ConfigError("agent: choose an agent, e.g. agent=c51 (see configs/agent/).")
        sections: dict[str, Any] = {}
        for name, klass in (
            ("env", EnvConfig),
            ("replay", ReplayConfig),
            ("trainer", TrainerConfig),
            ("logger", LoggerConfig),
        ):
            sections[name] = _build(klass, raw.pop(name, {}) or {}, name)
        network = dict(raw.pop("network", {}) or {})
        top = {f.name for f in dataclasses.fields(cls)} - {"agent", "network", *sections}
        unknown = set(raw) - top
        if unknown:
            raise ConfigError(
                f"Unknown config field(s) {sorted(unknown)}; top-level fields are "
                f"{sorted(top | {'agent', 'network', *sections})}."
            )
        cfg = cls(agent=dict(agent), network=network, **sections, **_convert(cls, raw, ""))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`ConfigError` (saying what to change) for any setting out of range,
        in this order: numbers, sizes against the replay capacity, then named choices (which
        also normalizes ``trainer.compile``)."""
        self._check_numbers()
        self._check_sizes()
        self._check_choices()

    def _check_numbers(self) -> None:
        t, r, e, lg = self.trainer, self.replay, self.env, self.logger
        _positive("trainer.total_steps", t.total_steps)
        _positive("trainer.batch_size", t.batch_size)
        _positive("trainer.update_period", t.update_period)
        _positive("trainer.target_update_period", t.target_update_period)
        _positive("env.num_envs", e.num_envs)
        _positive("env.eval_num_envs", e.eval_num_envs)
        _positive("replay.capacity", r.capacity)
        _positive("replay.n_step", r.n_step)
        _positive("logger.log_period", lg.log_period)
        for name, value in (
            ("trainer.learning_starts", t.learning_starts),
            ("trainer.epsilon_decay_steps", t.epsilon_decay_steps),
            ("trainer.eval_period", t.eval_period),
            ("trainer.checkpoint_period", t.checkpoint_period),
            ("trainer.checkpoint_minutes", t.checkpoint_minutes),
            ("trainer.torch_threads", t.torch_threads),
            ("logger.distribution_period", lg.distribution_period),
            ("logger.distribution_states", lg.distribution_states),
        ):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}.")
        if t.keep_checkpoints < 1:
            raise ConfigError(f"trainer.keep_checkpoints must be >= 1, got {t.keep_checkpoints}.")
        for name, fraction in (
            ("trainer.gamma", t.gamma),
            ("trainer.epsilon_start", t.epsilon_start),
            ("trainer.epsilon_end", t.epsilon_end),
            ("trainer.eval_epsilon", t.eval_epsilon),
            ("replay.beta", r.beta),
        ):
            if not 0.0 <= fraction <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {fraction}.")

    def _check_sizes(self) -> None:
        t, r = self.trainer, self.replay
        if t.learning_starts > r.capacity:
            raise ConfigError(
                f"trainer.learning_starts ({t.learning_starts}) is larger than replay.capacity "
                f"({r.capacity}): the warm-up could never fill. Lower trainer.learning_starts or "
                "raise replay.capacity."
            )
        if t.batch_size > r.capacity:
            raise ConfigError(
                f"trainer.batch_size ({t.batch_size}) is larger than replay.capacity ({r.capacity})."
            )

    def _check_choices(self) -> None:
        t, r = self.trainer, self.replay
        if t.precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(
                f"trainer.precision must be one of fp32, bf16, auto; got {t.precision!r}."
            )
        if r.storage not in ("host", "device", "auto"):
            raise ConfigError(
                f"replay.storage must be 'host', 'device' or 'auto', got {r.storage!r}."
            )
        t.compile = {"true": "torso", "false": "off"}.get(t.compile, t.compile)
        if t.compile not in ("off", "torso", "update", "graphs", "auto"):
            raise ConfigError(
                "trainer.compile must be off, torso, update, graphs or auto (true = torso); "
                f"got {t.compile!r}."
            )
        if t.channels_last not in ("auto", "true", "false"):
            raise ConfigError(
                f"trainer.channels_last must be auto, true or false; got {t.channels_last!r}."
            )
        if t.warmup_actions not in ("uniform", "agent"):
            raise ConfigError(
                f"trainer.warmup_actions must be uniform or agent; got {t.warmup_actions!r}."
            )
        if t.eval_episodes < 0 or t.eval_steps < 0:
            raise ConfigError(
                "trainer.eval_episodes and trainer.eval_steps must be >= 0 (0: no cap on games, "
                f"no step budget); got {t.eval_episodes} and {t.eval_steps}."
            )
        if t.eval_period and t.eval_episodes == 0 and t.eval_steps == 0:
            raise ConfigError(
                "trainer.eval_episodes=0 (no cap on games) needs a step budget: set "
                "trainer.eval_steps >= 1, or trainer.eval_episodes >= 1."
            )
        if t.eval_last_game not in ("drop", "finish"):
            raise ConfigError(
                f"trainer.eval_last_game must be drop or finish; got {t.eval_last_game!r}."
            )
        if t.device != "auto" and not (t.device == "cpu" or t.device.startswith("cuda")):
            raise ConfigError(
                f"trainer.device must be auto, cpu, cuda or cuda:N; got {t.device!r}."
            )


def unknown_fields_message(section: str, unknown: Iterable[str], valid: Iterable[str]) -> str:
    """``Unknown field(s) trainer.total_step. Valid fields of trainer: ... Did you mean
    trainer.total_steps?`` -- the message for a misspelled key, wherever it is found."""
    import difflib

    unknown, valid = sorted(unknown), sorted(valid)
    close = [
        f"{section}.{match[0]}"
        for key in unknown
        if (match := difflib.get_close_matches(key, valid, n=1, cutoff=0.6))
    ]
    hint = f" Did you mean {' / '.join(close)}?" if close else ""
    return (
        f"Unknown field(s) {', '.join(f'{section}.{k}' for k in unknown)}. "
        f"Valid fields of {section}: {', '.join(valid)}.{hint}"
    )


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}.")


def _build(klass: type, values: dict[str, Any], section: str) -> Any:
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(unknown_fields_message(section, unknown, names))
    return klass(**_convert(klass, values, f"{section}."))


def _convert(klass: type, values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``values`` converted by their fields' declared types (:mod:`distrl_agents.config_values`:
    YAML gives ints for floats, lists for tuples and the like); a value that cannot be converted
    is a :class:`ConfigError` naming the field."""
    try:
        return convert_fields(klass, values, prefix)
    except ConversionError as exc:
        raise ConfigError(str(exc)) from None
