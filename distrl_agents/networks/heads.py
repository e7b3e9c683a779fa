"""Heads: torso features ``[B, F]`` -> one ``ReturnDistribution`` per action.

Under bf16 autocast the torso and each head's hidden layer run in bf16, but the output layer
(values, advantages, atom logits, quantile or expectile values) computes in fp32 from those bf16
activations (``fp32_output``, see ``layers.FP32Linear``): values, softmax and quantiles reach the
losses and the greedy ``argmax`` fp32-exact, not rounded to bf16's 8-bit mantissa.

Heads trust their sizes: the agents' hyperparameter dataclasses (``agents/hparams.py``) check them.
Every head takes ``(in_features, num_actions, *, <its own sizes>, **stream)``: ``stream`` holds the
``layers.ActionStream`` options (``hidden``, ``dueling``, ``noisy``, ``noisy_std``,
``fp32_output``), passed through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.expectiles import expectile_levels
from distrl_agents.networks.layers import ActionStream


class ExpectedValueHead(nn.Module):
    """DQN head: one expected value per action, as a distribution with ``N = 1``, probs 1."""

    def __init__(self, in_features: int, num_actions: int, **stream: Any) -> None:
        super().__init__()
        self.stream = ActionStream(in_features, num_actions, 1, **stream)

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        values = self.stream(features).float()  # [B, A, 1]
        return ReturnDistribution(values=values, probs=torch.ones_like(values), taus=None)


class CategoricalHead(nn.Module):
    """C51 head (Bellemare et al. 2017, Sec. 4): softmax over a fixed support of ``K`` atoms.

    ``z_i = v_min + i * (v_max - v_min) / (K - 1)``, ``p_i(x, a) = softmax(theta_i(x, a))``.
    """

    support: Tensor  # [K] buffer

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        *,
        num_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        **stream: Any,
    ) -> None:
        super().__init__()
        self.num_atoms = num_atoms
        self.register_buffer("support", torch.linspace(v_min, v_max, num_atoms))  # [K]
        self.stream = ActionStream(in_features, num_actions, num_atoms, **stream)

    def logits(self, features: Tensor) -> Tensor:
        """Unnormalised log-probabilities ``[B, A, K]`` in fp32."""
        return self.stream(features).float()

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        logits = self.logits(features)  # [B, A, K]
        probs = torch.softmax(logits, dim=-1)  # fp32
        values = self.support.float().expand_as(probs)
        return ReturnDistribution(values=values, probs=probs, taus=None)


def quantile_midpoints(num_quantiles: int, device: torch.device | str | None = None) -> Tensor:
    """``tau_hat_i = (2i + 1) / (2N)``, i = 0..N-1 (Dabney et al. 2018 QR-DQN, Lemma 2). ``[N]``."""
    i = torch.arange(num_quantiles, dtype=torch.float32, device=device)
    return (2.0 * i + 1.0) / (2.0 * num_quantiles)


class QuantileHead(nn.Module):
    """QR-DQN head (Dabney et al. 2018a): ``N`` quantile values at the fixed midpoints."""

    taus: Tensor  # [N] buffer

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        *,
        num_quantiles: int = 200,
        **stream: Any,
    ) -> None:
        super().__init__()
        self.num_quantiles = num_quantiles
        self.register_buffer("taus", quantile_midpoints(num_quantiles))  # [N]
        self.stream = ActionStream(in_features, num_actions, num_quantiles, **stream)

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        values = self.stream(features).float()  # [B, A, N]
        probs = torch.full_like(values, 1.0 / self.num_quantiles)
        taus = self.taus.expand(values.shape[0], -1)  # [B, N]
        return ReturnDistribution(values=values, probs=probs, taus=taus)


class ExpectileHead(QuantileHead):
    """The QR-DQN head (one linear output per action and level) predicting expectiles.

    Same layers as ``QuantileHead``; only the levels buffer (``taus``, saved with the network)
    and the read-off differ: ``probs`` is one-hot on the ``tau = 0.5`` atom, so
    ``ReturnDistribution.q_values()`` returns the 0.5-expectile, which is the mean
    (Newey & Powell 1987). The values are expectiles, not atoms of
    the distribution: decode them with ``impute_samples`` before reading anything but the mean.
    """

    mean_weights: Tensor  # [K] one-hot buffer on the tau = 0.5 level

    def __init__(
        self, in_features: int, num_actions: int, *, num_expectiles: int = 31, **stream: Any
    ) -> None:
        """``stream``: the ``QuantileHead`` layer options (``hidden``, ``dueling``, ...)."""
        super().__init__(in_features, num_actions, num_quantiles=num_expectiles, **stream)
        self.num_expectiles = num_expectiles
        self.mean_index = num_expectiles // 2  # tau_{(K+1)/2} = 0.5
        with torch.no_grad():
            self.taus.copy_(expectile_levels(num_expectiles))  # [K]
        mean_weights = torch.zeros(num_expectiles)
        mean_weights[self.mean_index] = 1.0
        self.register_buffer("mean_weights", mean_weights, persistent=False)  # [K] one-hot

    @property
    def levels(self) -> Tensor:
        """The expectile levels ``tau_k = k / (K + 1)`` ``[K]``: the ``taus`` buffer, whose name
        (``QuantileHead``'s) stays for the checkpoint layout."""
        return self.taus

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        values = self.stream(features).float()  # [B, A, K] expectiles
        probs = self.mean_weights.expand_as(values)  # [B, A, K]: Q = the 0.5-expectile
        taus = self.taus.expand(values.shape[0], -1)  # [B, K]
        return ReturnDistribution(values=values, probs=probs, taus=taus)


class ParticleHead(nn.Module):
    """MMD-DQN head (Nguyen-Tang et al. 2021): ``N`` unordered particles per action.

    The QR-DQN layers without quantile levels: the particles are deterministic pseudo-samples
    of the return, equally weighted (``probs = 1/N``, so ``q_values()`` is their mean) and in no
    particular order, so ``taus`` is ``None``.
    """

    def __init__(
        self, in_features: int, num_actions: int, *, num_particles: int = 200, **stream: Any
    ) -> None:
        super().__init__()
        self.num_particles = num_particles
        self.stream = ActionStream(in_features, num_actions, num_particles, **stream)

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        values = self.stream(features).float()  # [B, A, N]
        probs = torch.full_like(values, 1.0 / self.num_particles)
        return ReturnDistribution(values=values, probs=probs, taus=None)


class CosineEmbedding(nn.Module):
    """IQN quantile embedding (Dabney et al. 2018b, Eq. 4):
    ``phi_j(tau) = ReLU(sum_i cos(pi * i * tau) w_ij + b_j)``.

    We use ``i = 1..n`` as Dopamine (``tf.range(1, n + 1)`` in ``ImplicitQuantileNetwork``) and
    DQN Zoo do; the paper writes ``i = 0..n-1``, where ``i = 0`` is a constant feature that only
    duplicates the bias.
    """

    pi_i: Tensor  # [n] buffer

    def __init__(self, embedding_dim: int, out_features: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.register_buffer(
            "pi_i", math.pi * torch.arange(1, embedding_dim + 1, dtype=torch.float32)
        )  # [n]
        self.linear = nn.Linear(embedding_dim, out_features)

    def cosines(self, taus: Tensor) -> Tensor:
        """``cos(pi * i * tau)``: taus ``[B, N]`` -> ``[B, N, n]`` in fp32."""
        return torch.cos(taus.float().unsqueeze(-1) * self.pi_i)

    def forward(self, taus: Tensor) -> Tensor:
        return torch.relu(self.linear(self.cosines(taus)))  # [B, N, F]


class ImplicitQuantileHead(nn.Module):
    """IQN head (Dabney et al. 2018b, Sec. 3): ``Z_tau(x, a) = f(psi(x) ⊙ phi(tau))_a``.

    ``forward`` samples ``num_quantiles`` taus ~ U[0, 1] per state unless ``taus`` are given;
    ``num_quantiles`` defaults to the head's acting sample count ``K``.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        *,
        num_quantiles: int = 32,
        embedding_dim: int = 64,
        **stream: Any,
    ) -> None:
        super().__init__()
        self.num_quantiles = num_quantiles
        self.embedding = CosineEmbedding(embedding_dim, in_features)
        self.stream = ActionStream(in_features, num_actions, 1, **stream)

    @torch.compiler.disable  # a seeded generator cannot be traced: sampled eagerly
    def sample_taus(
        self,
        batch_size: int,
        num_quantiles: int,
        device: torch.device,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Taus ~ U[0, 1], ``[B, N]`` (Dabney et al. 2018b, Sec. 3.1)."""
        return torch.rand(batch_size, num_quantiles, device=device, generator=generator)

    def quantile_values(self, features: Tensor, taus: Tensor) -> Tensor:
        """Quantile values ``[B, A, N]`` (fp32) at taus ``[B, N]``."""
        phi = self.embedding(taus)  # [B, N, F]
        merged = features.unsqueeze(1) * phi  # psi(x) ⊙ phi(tau), Dabney et al. 2018b Sec. 3.1
        out = self.stream(merged)  # [B, N, A, 1]
        return out.squeeze(-1).transpose(1, 2).float()  # [B, A, N]

    def forward(
        self,
        features: Tensor,
        *,
        taus: Tensor | None = None,
        num_quantiles: int | None = None,
        generator: torch.Generator | None = None,
        **_: object,
    ) -> ReturnDistribution:
        if taus is None:
            n = self.num_quantiles if num_quantiles is None else num_quantiles
            taus = self.sample_taus(features.shape[0], n, features.device, generator)
        elif taus.dim() == 1:
            taus = taus.unsqueeze(0).expand(features.shape[0], -1)
        values = self.quantile_values(features, taus)
        probs = torch.full_like(values, 1.0 / values.shape[-1])
        return ReturnDistribution(values=values, probs=probs, taus=taus.float())


@dataclass(frozen=True)
class Fractions:
    """FQF proposed fractions for a batch.

    Attributes:
        taus: ``[B, N+1]`` ordered fractions ``0 = tau_0 < ... < tau_N = 1``.
        tau_hats: ``[B, N]`` midpoints ``(tau_i + tau_{i+1}) / 2``.
        entropy: ``[B]`` entropy of the proposal's softmax (a diagnostic and optional bonus).
    """

    taus: Tensor
    tau_hats: Tensor
    entropy: Tensor


#: FQF fraction-layer initialisations: ``variance_scaling`` (the authors' code, microsoft/FQF
#: ``atari_lib.fqf_network``: ``slim.variance_scaling_initializer(factor=1/sqrt(3), mode='FAN_IN',
#: uniform=True)``, biases zero) or ``xavier_small`` (Kuwahara's PyTorch port: Xavier uniform with
#: gain 0.01, biases zero, so the first proposal is nearly uniform).
FRACTION_INITS = ("variance_scaling", "xavier_small")


class FractionProposal(nn.Module):
    """FQF fraction-proposal network (Yang et al. 2019, Sec. 3.2): one linear layer + softmax;
    ``tau_i = sum_{k<i} q_k`` (cumulative softmax), so the fractions are ordered by construction.
    """

    #: runs in fp32 even under bf16 autocast: its weights must stay fp32 (see agents/base.py).
    runs_in_fp32 = True

    def __init__(
        self, in_features: int, num_fractions: int, init: str = "variance_scaling"
    ) -> None:
        super().__init__()
        if init not in FRACTION_INITS:
            raise ValueError(f"fraction init must be one of {FRACTION_INITS}, got {init!r}")
        self.num_fractions = num_fractions
        self.linear = nn.Linear(in_features, num_fractions)
        if init == "variance_scaling":
            # TF's variance scaling, uniform, fan-in: U(-l, l) with l = sqrt(3 * factor / fan_in).
            limit = math.sqrt(3.0 * (1.0 / math.sqrt(3.0)) / in_features)
            nn.init.uniform_(self.linear.weight, -limit, limit)
        else:
            nn.init.xavier_uniform_(self.linear.weight, gain=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: Tensor, *, train_params: bool = True) -> Fractions:
        """Fractions for ``features``; ``train_params=False`` lets no gradient reach this layer's
        weights (the gradient still flows to ``features`` unless they are detached)."""
        weight: Tensor = self.linear.weight
        bias: Tensor = self.linear.bias
        if not train_params:
            weight, bias = weight.detach(), bias.detach()
        # Always fp32 (also under bf16 autocast): the proposal's logits feed a cumulative softmax.
        with torch.autocast(features.device.type, enabled=False):
            log_q = F.log_softmax(F.linear(features.float(), weight, bias), dim=-1)  # [B, N]
        q = log_q.exp()
        entropy = -(q * log_q).sum(-1)  # [B]
        # Cumulative softmax; clamp and pin tau_N = 1 exactly (fp32 cumsum may end at 1 +- 1e-7).
        cum = torch.cumsum(q, dim=-1)[:, :-1].clamp(max=1.0)  # [B, N-1]: tau_1 .. tau_{N-1}
        zeros, ones = torch.zeros_like(cum[:, :1]), torch.ones_like(cum[:, :1])
        taus = torch.cat([zeros, cum, ones], dim=-1)  # [B, N+1], Yang et al. 2019 Sec. 3.2
        tau_hats = 0.5 * (taus[:, :-1] + taus[:, 1:])  # Yang et al. 2019, Sec. 3.1
        return Fractions(taus=taus, tau_hats=tau_hats, entropy=entropy)


class FQFHead(ImplicitQuantileHead):
    """FQF head (Yang et al. 2019): a fraction proposal plus IQN's quantile value network.

    The distribution is the staircase with value ``F^-1(tau_hat_i)`` on ``[tau_i, tau_{i+1})``:
    values at the midpoints, probs ``tau_{i+1} - tau_i``. ``propose`` reads detached features
    unless asked otherwise: the fraction loss never trains the torso (as in the authors' code,
    whose fraction optimiser updates only the proposal layer, and Kuwahara's port).
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        *,
        num_fractions: int = 32,
        fraction_init: str = "variance_scaling",
        **layers: Any,
    ) -> None:
        """``layers``: the ``ImplicitQuantileHead`` options (``embedding_dim``, ``hidden``, ...);
        ``fraction_init``: one of ``FRACTION_INITS``."""
        # IQN's ``num_quantiles`` (its default sample count) is N here: one value per fraction.
        super().__init__(in_features, num_actions, num_quantiles=num_fractions, **layers)
        self.num_fractions = num_fractions
        self.fraction_proposal = FractionProposal(in_features, num_fractions, fraction_init)

    def propose(
        self, features: Tensor, *, train_params: bool = True, train_torso: bool = False
    ) -> Fractions:
        """Fractions for ``features``. Gradient reaches the proposal layer with ``train_params``
        and the torso (through ``features``) with ``train_torso``."""
        return self.fraction_proposal(
            features if train_torso else features.detach(), train_params=train_params
        )

    def forward(self, features: Tensor, **_: object) -> ReturnDistribution:
        fr = self.propose(features)
        values = self.quantile_values(features, fr.tau_hats.detach())  # [B, A, N]
        probs = (fr.taus[:, 1:] - fr.taus[:, :-1]).unsqueeze(1).expand_as(values)
        return ReturnDistribution(values=values, probs=probs, taus=fr.tau_hats)
