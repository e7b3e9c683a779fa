"""Hyperparameters: one frozen dataclass per agent, each field declared once.

``AgentConfig`` holds the fields every agent shares; each agent module subclasses it with its
own fields (and the shared defaults its paper changes). A field is its name, type, default (the
agent's preset), a docstring, and a check in ``__post_init__`` that names it when it fails.
``make_agent`` builds the dataclass from its keyword arguments; Hydra's
``configs/agent/<name>.yaml`` sets exactly these fields, with a citation per value
(``tests/test_agents.py`` checks that every YAML value equals the dataclass default).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from distrl_agents.agents.runtime import compile_mode
from distrl_agents.config_values import ConversionError, convert_fields

#: ``adam``; ``rmsprop`` (PyTorch's: epsilon added outside the square root); ``rmsprop_tf``
#: (TensorFlow's, as in the DQN paper and Dopamine: epsilon inside the square root, ``TFRMSprop``).
OPTIMIZERS = ("adam", "rmsprop", "rmsprop_tf")
PRECISIONS = ("fp32", "bf16")
#: How the importance-weighted per-sample losses of a minibatch become the loss differentiated:
#: their ``mean`` or their ``sum`` (``batch_size`` times the mean's gradient).
LOSS_REDUCTIONS = ("mean", "sum")


def check_hparam(cond: bool, field_name: str, message: str) -> None:
    """Raise ``ValueError`` naming ``field_name`` unless ``cond``."""
    if not cond:
        raise ValueError(f"invalid hparam {field_name!r}: {message}")


@dataclass(frozen=True)
class AgentConfig:
    """The hyperparameters every agent shares (optimiser, double Q, and run-level settings)."""

    optimizer: str = "adam"
    """``adam``, ``rmsprop`` (PyTorch's, epsilon outside the square root) or ``rmsprop_tf``
    (TensorFlow's, epsilon inside: the DQN paper and Dopamine; ``agents.optim.TFRMSprop``)."""
    lr: float = 5e-5
    """Learning rate."""
    optimizer_eps: float = 0.01 / 32
    """Adam / RMSprop epsilon."""
    rmsprop_alpha: float = 0.95
    """RMSprop smoothing constant (TensorFlow's ``decay``)."""
    rmsprop_centered: bool = False
    """Centred RMSprop (Graves 2013)."""
    rmsprop_initial_ms: float = 1.0
    """Starting mean square of ``rmsprop_tf`` (TensorFlow 1 / Dopamine: 1; the DQN paper's code:
    0); unused by the other optimisers."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this (``None``: no clipping)."""
    double_dqn: bool = False
    """Pick the bootstrap action with the online network (van Hasselt et al. 2016)."""
    loss_reduction: str = "mean"
    """``mean`` or ``sum`` of the minibatch's importance-weighted per-sample losses (and of an
    auxiliary loss such as FQF's fraction loss): the loss differentiated. ``sum`` is the DQN
    paper's Lua code, which back-propagates the clipped TD errors of its 32 samples unscaled
    (a gradient ``batch_size`` times the mean's; it matters under RMSProp, whose epsilon does
    not scale with the gradient). The logged ``loss`` is the weighted mean either way."""
    precision: str = "fp32"
    """``fp32`` or ``bf16`` (autocast for torso and heads; losses stay fp32). Run-level."""
    act_precision: str | None = None
    """The precision of ``act`` (``None``: ``precision``). Acting runs on small batches, where
    bf16 may not pay for its casts even when the update gains from it. Run-level."""
    compile: bool | str = "off"
    """``off``, ``torso`` (``True``: ``torch.compile`` the torso forward), ``update`` (compile
    the whole loss computation of a step) or ``graphs`` (``update`` with CUDA graphs on a CUDA
    device); falls back to eager with a warning. Run-level."""
    channels_last: bool = False
    """Keep conv activations in channels-last memory format. Run-level."""
    seed: int = 0
    """Seeds network initialisation, tau / noise sampling and epsilon-greedy draws. Run-level."""

    def __post_init__(self) -> None:
        # Each field as its declared type (YAML and the CLI give strings, ints where floats are
        # meant, lists for tuples: ``config_values``); ``hparams`` records the converted values.
        try:
            converted = convert_fields(
                type(self), {f.name: getattr(self, f.name) for f in fields(self)}
            )
        except ConversionError as exc:
            raise ValueError(
                f"invalid hparam {exc.field!r}: must be {exc.expected}, got {exc.value!r}"
            ) from None
        converted["compile"] = compile_mode(converted["compile"])
        for name, value in converted.items():
            object.__setattr__(self, name, value)
        if self.act_precision is None:
            object.__setattr__(self, "act_precision", self.precision)
        check_hparam(
            self.optimizer in OPTIMIZERS,
            "optimizer",
            f"must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        check_positive(self, "lr", "optimizer_eps")
        check_hparam(
            0 < self.rmsprop_alpha < 1,
            "rmsprop_alpha",
            f"must be in (0, 1), got {self.rmsprop_alpha}",
        )
        check_at_least(self, 0, "rmsprop_initial_ms")
        check_hparam(
            self.loss_reduction in LOSS_REDUCTIONS,
            "loss_reduction",
            f"must be one of {list(LOSS_REDUCTIONS)}, got {self.loss_reduction!r}",
        )
        check_hparam(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            "max_grad_norm",
            f"must be > 0 or null, got {self.max_grad_norm}",
        )
        for name in ("precision", "act_precision"):
            value = getattr(self, name)
            check_hparam(
                value in PRECISIONS, name, f"must be one of {list(PRECISIONS)}, got {value!r}"
            )


def check_positive(config: AgentConfig, *names: str) -> None:
    """Each field ``names`` of ``config`` must be ``> 0``."""
    for name in names:
        value = getattr(config, name)
        check_hparam(value > 0, name, f"must be > 0, got {value}")


def check_at_least(config: AgentConfig, minimum: int, *names: str) -> None:
    """Each field ``names`` of ``config`` must be ``>= minimum``."""
    for name in names:
        value = getattr(config, name)
        check_hparam(value >= minimum, name, f"must be >= {minimum}, got {value}")


__all__ = [
    "LOSS_REDUCTIONS",
    "OPTIMIZERS",
    "PRECISIONS",
    "AgentConfig",
    "check_at_least",
    "check_hparam",
    "check_positive",
]
