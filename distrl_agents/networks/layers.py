"""Building blocks shared by every head: noisy linear layers and (dueling) output streams."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian parameter noise (Fortunato et al. 2018, Sec. 3.2).

    ``w = mu_w + sigma_w * (f(eps_out) f(eps_in)^T)``, ``b = mu_b + sigma_b * f(eps_out)`` with
    ``f(x) = sgn(x) sqrt(|x|)`` (Eq. 11). Initialisation follows Sec. 3.2: ``mu ~ U[-1/sqrt(p),
    1/sqrt(p)]`` and ``sigma = sigma_0 / sqrt(p)`` with ``sigma_0 = 0.5`` (``p`` = fan-in).
    In eval mode the layer uses the mean weights only (the usual greedy-evaluation convention).
    """

    eps_in: Tensor  # [in_features] buffer: f(eps_in)
    eps_out: Tensor  # [out_features] buffer: f(eps_out)

    def __init__(
        self, in_features: int, out_features: int, std_init: float = 0.5, fp32: bool = False
    ) -> None:
        super().__init__()
        #: ``fp32``: compute in fp32 even under autocast (an output layer, see ``FP32Linear``).
        self.runs_in_fp32 = fp32
        self.in_features = in_features
        self.out_features = out_features
        self.std_init = std_init
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.std_init / math.sqrt(self.in_features))
        nn.init.constant_(self.bias_sigma, self.std_init / math.sqrt(self.in_features))

    @staticmethod
    def _scaled_noise(size: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        x = torch.randn(size, device=device, generator=generator)
        return x.sign() * x.abs().sqrt()  # f(x) = sgn(x) sqrt(|x|), Fortunato et al. Eq. 11

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        for eps in (self.eps_in, self.eps_out):
            if eps.dtype == torch.float32:
                # In place: ``_scaled_noise``'s values (``randn`` is ``normal_`` on a new
                # tensor) without its temporaries and the copy.
                eps.normal_(generator=generator)
                sign = eps.sign()
                eps.abs_().sqrt_().mul_(sign)
            else:
                eps.copy_(self._scaled_noise(eps.numel(), eps.device, generator))

    def forward(self, x: Tensor) -> Tensor:
        if self.runs_in_fp32:
            with torch.autocast(x.device.type, enabled=False):
                return self._linear(x.float())
        return self._linear(x)

    def _linear(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"std_init={self.std_init}, fp32={self.runs_in_fp32}"
        )


class FP32Linear(nn.Linear):
    """``nn.Linear`` that computes in fp32 even under bf16 autocast: an output layer.

    Under autocast a plain ``Linear`` returns bf16, whose 8-bit mantissa rounds a Q-value of 20
    to a multiple of 0.125 (of 200, to a multiple of 1), so near-equal actions tie or swap. This
    layer takes its (bf16) input exactly into fp32 and multiplies by fp32 weights: given the same
    input it returns what the fp32 network returns. ``runs_in_fp32`` keeps its weights fp32 in the
    bf16-stored target and acting copies (``agents/base.py``). Same parameters and state-dict keys
    as ``nn.Linear``.
    """

    runs_in_fp32 = True

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float(), self.bias.float())


def make_linear(
    in_features: int, out_features: int, noisy: bool, noisy_std: float, fp32: bool = False
) -> nn.Module:
    """``nn.Linear`` or ``NoisyLinear`` depending on the network's ``noisy`` option; ``fp32``: one
    that computes in fp32 under autocast (``FP32Linear`` / ``NoisyLinear(fp32=True)``)."""
    if noisy:
        return NoisyLinear(in_features, out_features, noisy_std, fp32=fp32)
    if fp32:
        return FP32Linear(in_features, out_features)
    return nn.Linear(in_features, out_features)


class ActionStream(nn.Module):
    """Hidden layer + per-action outputs, optionally dueling (Wang et al. 2016, Eq. 9).

    Maps features ``[..., F]`` to ``[..., A, K]`` (``K`` outputs per action: atoms, quantiles or 1).
    Dueling: ``out = V [..., 1, K] + A [..., A, K] - mean_a A``, applied per atom as in Rainbow
    (Hessel et al. 2018, Sec. 3, "dueling networks" with distributional outputs).

    ``fp32_output`` (default): the output layers (advantage and value) and the dueling sum run in
    fp32 under bf16 autocast, so the outputs are fp32-exact given the hidden activations; the
    hidden layer stays in the autocast dtype. ``False`` gives the plain autocast layers (bf16
    outputs), kept to measure what the fp32 outputs cost.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        num_outputs: int,
        *,
        hidden: int = 512,
        dueling: bool = False,
        noisy: bool = False,
        noisy_std: float = 0.5,
        fp32_output: bool = True,
    ) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.num_outputs = num_outputs
        self.dueling = dueling
        self.advantage = nn.Sequential(
            make_linear(in_features, hidden, noisy, noisy_std),
            nn.ReLU(),
            make_linear(hidden, num_actions * num_outputs, noisy, noisy_std, fp32_output),
        )
        self.value: nn.Sequential | None = None
        if dueling:
            self.value = nn.Sequential(
                make_linear(in_features, hidden, noisy, noisy_std),
                nn.ReLU(),
                make_linear(hidden, num_outputs, noisy, noisy_std, fp32_output),
            )

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        adv = self.advantage(x).view(*lead, self.num_actions, self.num_outputs)  # [..., A, K]
        if self.value is None:
            return adv
        value = self.value(x).view(*lead, 1, self.num_outputs)  # [..., 1, K]
        return value + adv - adv.mean(dim=-2, keepdim=True)  # Wang et al. 2016, Eq. 9


def reset_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Resample the noise of every ``NoisyLinear`` inside ``module`` (no-op without noisy layers)."""
    for m in module.modules():
        if isinstance(m, NoisyLinear):
            m.reset_noise(generator)


def has_noisy_layers(module: nn.Module) -> bool:
    return any(isinstance(m, NoisyLinear) for m in module.modules())
