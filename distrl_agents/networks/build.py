"""``build_network``: torso + head from a plain dict of options (the Hydra ``network`` group)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.networks.heads import (
    CategoricalHead,
    ExpectedValueHead,
    ExpectileHead,
    FQFHead,
    ImplicitQuantileHead,
    ParticleHead,
    QuantileHead,
)
from distrl_agents.networks.layers import has_noisy_layers, reset_noise
from distrl_agents.networks.torsos import (
    DataEfficientCNN,
    DopamineCNN,
    ImpalaCNN,
    MLPTorso,
    NatureCNN,
)

#: Heads by name, for ``build_network(head="...")``. An agent passes its head class itself
#: (``Agent.head_spec``): a new head needs no entry here.
HEADS: dict[str, type[nn.Module]] = {
    "expected": ExpectedValueHead,
    "categorical": CategoricalHead,
    "quantile": QuantileHead,
    "implicit": ImplicitQuantileHead,
    "fqf": FQFHead,
    "expectile": ExpectileHead,
    "particle": ParticleHead,
}
TORSOS = ("nature", "dopamine", "der", "impala", "mlp")

# Every network option with its default. ``hidden`` is the width of the head's hidden layer
# (512 in Nature DQN); ``noisy_std`` is sigma_0 of Fortunato et al. 2018 (0.5, factorised);
# ``fp32_output``: the heads' output layers compute in fp32 under bf16 autocast (values are
# fp32-exact); ``False`` leaves them to autocast (bf16 values), only to measure the difference.
NETWORK_DEFAULTS: dict[str, Any] = {
    "torso": "nature",
    "hidden": 512,
    "dueling": False,
    "noisy": False,
    "noisy_std": 0.5,
    "fp32_output": True,
    "impala_channels": (16, 32, 32),
    "mlp_sizes": (64, 64),
}


def network_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``options``; unknown keys or bad values raise ``ValueError``."""
    opts = dict(NETWORK_DEFAULTS)
    for key, value in (options or {}).items():
        if key not in NETWORK_DEFAULTS:
            raise ValueError(
                f"unknown network option {key!r}; valid options: {sorted(NETWORK_DEFAULTS)}"
            )
        opts[key] = value
    if opts["torso"] not in TORSOS:
        raise ValueError(f"network.torso must be one of {list(TORSOS)}, got {opts['torso']!r}")
    if int(opts["hidden"]) < 1:
        raise ValueError(f"network.hidden must be >= 1, got {opts['hidden']}")
    if float(opts["noisy_std"]) < 0:
        raise ValueError(f"network.noisy_std must be >= 0, got {opts['noisy_std']}")
    opts["hidden"] = int(opts["hidden"])
    opts["dueling"] = bool(opts["dueling"])
    opts["noisy"] = bool(opts["noisy"])
    opts["noisy_std"] = float(opts["noisy_std"])
    opts["fp32_output"] = bool(opts["fp32_output"])
    opts["impala_channels"] = tuple(int(c) for c in opts["impala_channels"])
    opts["mlp_sizes"] = tuple(int(c) for c in opts["mlp_sizes"])
    return opts


def build_torso(options: Mapping[str, Any], obs_shape: Sequence[int]) -> nn.Module:
    torso = options["torso"]
    if torso == "nature":
        return NatureCNN(obs_shape)
    if torso == "dopamine":
        return DopamineCNN(obs_shape)
    if torso == "der":
        return DataEfficientCNN(obs_shape)
    if torso == "impala":
        return ImpalaCNN(obs_shape, options["impala_channels"])
    return MLPTorso(obs_shape, options["mlp_sizes"])


class DistributionalNetwork(nn.Module):
    """Torso + head. ``forward(obs, **head_kwargs) -> ReturnDistribution`` ``[B, A, N]``."""

    def __init__(self, torso: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.torso = torso
        self.head = head

    def forward(self, obs: Tensor, **head_kwargs: Any) -> ReturnDistribution:
        return self.head(self.torso(obs), **head_kwargs)

    def features(self, obs: Tensor) -> Tensor:
        return self.torso(obs)

    @property
    def noisy(self) -> bool:
        return has_noisy_layers(self)

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        reset_noise(self, generator)


def build_network(
    options: Mapping[str, Any] | None,
    *,
    obs_shape: Sequence[int],
    num_actions: int,
    head: type[nn.Module] | str,
    **head_kwargs: Any,
) -> DistributionalNetwork:
    """Build a network from a plain dict of options.

    Args:
        options: ``torso`` (nature | dopamine | der | impala | mlp), ``hidden``, ``dueling``, ``noisy``,
            ``noisy_std``, ``fp32_output``, ``impala_channels``, ``mlp_sizes``; missing keys take
            ``NETWORK_DEFAULTS``.
        obs_shape: one observation's shape, e.g. ``(4, 84, 84)`` or ``(d,)``.
        num_actions: ``A``.
        head: the head class (chosen by the agent, not by the user), or its name in ``HEADS``.
        head_kwargs: the head's own arguments (``num_atoms``, ``num_quantiles``, ...).
    """
    opts = network_options(options)
    if isinstance(head, str):
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid heads: {sorted(HEADS)}")
        head = HEADS[head]
    torso = build_torso(opts, obs_shape)
    head_module = head(
        torso.output_dim,
        num_actions,
        hidden=opts["hidden"],
        dueling=opts["dueling"],
        noisy=opts["noisy"],
        noisy_std=opts["noisy_std"],
        fp32_output=opts["fp32_output"],
        **head_kwargs,
    )
    return DistributionalNetwork(torso, head_module)
