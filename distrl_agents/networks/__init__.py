"""Network zoo: torsos (Nature CNN, IMPALA ResNet, MLP), heads, noisy/dueling layers, builder."""

from __future__ import annotations

from distrl_agents.networks.build import (
    HEADS,
    NETWORK_DEFAULTS,
    TORSOS,
    DistributionalNetwork,
    build_network,
    build_torso,
    network_options,
)
from distrl_agents.networks.heads import (
    CategoricalHead,
    CosineEmbedding,
    ExpectedValueHead,
    ExpectileHead,
    FQFHead,
    FractionProposal,
    Fractions,
    ImplicitQuantileHead,
    ParticleHead,
    QuantileHead,
    quantile_midpoints,
)
from distrl_agents.networks.layers import ActionStream, NoisyLinear, reset_noise
from distrl_agents.networks.torsos import DataEfficientCNN, ImpalaCNN, MLPTorso, NatureCNN

__all__ = [
    "HEADS",
    "NETWORK_DEFAULTS",
    "TORSOS",
    "ActionStream",
    "CategoricalHead",
    "CosineEmbedding",
    "DataEfficientCNN",
    "DistributionalNetwork",
    "ExpectedValueHead",
    "ExpectileHead",
    "FQFHead",
    "FractionProposal",
    "Fractions",
    "ImpalaCNN",
    "ImplicitQuantileHead",
    "MLPTorso",
    "NatureCNN",
    "NoisyLinear",
    "ParticleHead",
    "QuantileHead",
    "build_network",
    "build_torso",
    "network_options",
    "quantile_midpoints",
    "reset_noise",
]
