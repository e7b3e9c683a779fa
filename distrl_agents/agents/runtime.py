"""The machinery around an agent's math: compile modes, bf16 weight copies, optimisers.

Nothing here knows an agent's target or loss. ``Agent`` (``agents/base.py``) uses these to run
its ``compute_loss`` compiled or eagerly, to keep the frozen target (and, acting in bf16, an
acting copy) stored in bf16, and to build one optimiser per ``ParamGroup``. Which precision each
part runs in is the run's decision (``training/precision.py``), given as the ``precision`` and
``act_precision`` hparams; this module only applies it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from distrl_agents.agents.optim import TFRMSprop
from distrl_agents.networks import DistributionalNetwork

#: ``compile`` settings: ``off``; ``torso`` compiles the torsos' forward; ``update`` compiles the
#: whole loss computation of a learning step (online and target forwards, Bellman target, loss);
#: ``graphs`` is ``update`` plus CUDA graphs on a CUDA device (``torch.compile``'s
#: ``reduce-overhead`` mode: the update has static shapes, so its forward and backward kernels
#: replay from a captured graph instead of being launched one by one).
COMPILE_MODES = ("off", "torso", "update", "graphs")


def compile_mode(value: bool | str | None) -> str:
    """Normalise a ``compile`` setting: ``True`` means ``torso``, ``False`` / ``None`` ``off``."""
    if value is True or value == "true":
        return "torso"
    if value is False or value is None or value == "false":
        return "off"
    if value not in COMPILE_MODES:
        raise ValueError(
            f"invalid hparam 'compile': must be one of {COMPILE_MODES} or a bool, got {value!r}"
        )
    return str(value)


class MaybeCompiled:
    """Calls ``torch.compile(fn)``; on any compile/runtime failure warns once and runs eager."""

    def __init__(self, fn: Callable[..., Any], enabled: bool, **compile_kwargs: Any) -> None:
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        if enabled:
            try:
                self.compiled = torch.compile(fn, **compile_kwargs)
            except Exception as exc:  # pragma: no cover - depends on the platform
                warnings.warn(f"torch.compile failed ({exc!r}); running eagerly", stacklevel=3)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:
                warnings.warn(f"torch.compile failed ({exc!r}); running eagerly", stacklevel=2)
                self.compiled = None
        return self.fn(*args)


def compile_update(
    loss_fn: Callable[..., Any], mode: str, device: torch.device
) -> tuple[MaybeCompiled, bool]:
    """The update's loss function under ``compile`` mode ``mode``, and whether it replays CUDA
    graphs (``graphs`` on a CUDA device; elsewhere ``graphs`` compiles without them)."""
    cuda_graphs = mode == "graphs" and device.type == "cuda"
    if mode == "graphs" and not cuda_graphs:
        warnings.warn(
            f"compile=graphs: CUDA graphs need a CUDA device, not {device.type!r}; "
            "compiling the update without them (as compile=update)",
            stacklevel=3,
        )
    compiled = MaybeCompiled(
        loss_fn,
        mode in ("update", "graphs"),
        **({"mode": "reduce-overhead"} if cuda_graphs else {}),
    )
    return compiled, cuda_graphs


def store_autocast_layers_in_bf16(net: nn.Module) -> None:
    """Keep a frozen network's ``Conv2d`` / ``Linear`` weights in bf16.

    Under bf16 autocast these layers cast their fp32 weights to bf16 on every forward pass, so a
    network stored in bf16 computes exactly what the fp32 one does, without re-casting ~1.7M
    weights per update (the Nature network). Only these exact types are converted, and none
    inside a module that declares ``runs_in_fp32`` (it turns autocast off, as the FQF fraction
    proposal does); layers that use their weights outside autocast (noisy layers) are other types
    and stay fp32. ``load_state_dict`` (target sync, checkpoints) converts on copy.
    """
    fp32_scopes = [name for name, m in net.named_modules() if getattr(m, "runs_in_fp32", False)]
    for name, module in net.named_modules():
        if any(name == s or name.startswith(s + ".") for s in fp32_scopes):
            continue
        if type(module) in (nn.Conv2d, nn.Linear):
            module.to(torch.bfloat16)


def frozen_copy(net: DistributionalNetwork, *, bf16: bool) -> DistributionalNetwork:
    """A copy of ``net`` without gradients (the target, the acting copy), stored in bf16 when
    it only ever runs under bf16 autocast."""
    frozen = copy.deepcopy(net)
    frozen.requires_grad_(False)
    if bf16:
        store_autocast_layers_in_bf16(frozen)
    return frozen


class ActingCopy:
    """The online network stored in bf16 for acting in bf16.

    Acting reads the online weights every agent step; a bf16-stored copy, refreshed only when
    the online weights have changed (an update every few steps), saves casting ~1.7M fp32
    weights on every step. The copy is refreshed when the online weights may have changed since
    the last refresh: after ``mark_changed`` (updates and checkpoint loads: the fused optimiser
    steps in place without bumping tensor version counters) and after any other in-place change
    of an online parameter or buffer (their version counters: noise resets, copies). It follows
    the online network's train / eval mode, so it always computes what the online network
    computes under autocast.
    """

    def __init__(self, online: DistributionalNetwork) -> None:
        self.online = online
        self.net = frozen_copy(online, bf16=True)
        self._pairs: list[tuple[Tensor, Tensor]] = [
            *zip(online.parameters(), self.net.parameters()),
            *zip(online.buffers(), self.net.buffers()),
        ]
        self._key: tuple[int, ...] | None = None
        self._epoch = 0  # bumped where the online weights change without a version bump

    def mark_changed(self) -> None:
        self._epoch += 1

    def network(self) -> DistributionalNetwork:
        """The copy, refreshed if the online weights changed, in the online network's mode."""
        key = (self._epoch, *(src._version for src, _ in self._pairs))
        if key != self._key:
            with torch.no_grad():
                for src, dst in self._pairs:
                    dst.copy_(src)
            self._key = key
        if self.net.training != self.online.training:
            self.net.train(self.online.training)
        return self.net


@dataclass
class ParamGroup:
    """Parameters trained by one optimiser: ``kind`` in ``OPTIMIZERS``, with its lr / eps."""

    name: str
    params: list[nn.Parameter]
    kind: str
    lr: float
    eps: float
    rmsprop_alpha: float = 0.95
    rmsprop_centered: bool = False
    rmsprop_initial_ms: float = 1.0


def make_optimizer(group: ParamGroup) -> torch.optim.Optimizer:
    """Adam (the fused kernel where there is one), TensorFlow's or PyTorch's RMSprop."""
    if group.kind == "adam":
        # The fused kernel (CPU and CUDA) is the same algorithm in one pass over each
        # parameter: about 4x cheaper than the per-tensor loop on the Nature network here.
        try:
            return torch.optim.Adam(group.params, lr=group.lr, eps=group.eps, fused=True)
        except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
            return torch.optim.Adam(group.params, lr=group.lr, eps=group.eps)
    if group.kind == "rmsprop_tf":
        return TFRMSprop(
            group.params,
            lr=group.lr,
            alpha=group.rmsprop_alpha,
            eps=group.eps,
            centered=group.rmsprop_centered,
            initial_mean_square=group.rmsprop_initial_ms,
        )
    return torch.optim.RMSprop(
        group.params,
        lr=group.lr,
        alpha=group.rmsprop_alpha,
        eps=group.eps,
        centered=group.rmsprop_centered,
        foreach=True,
    )


def total_grad_norm(params: Sequence[nn.Parameter]) -> Tensor:
    """Global L2 norm of the gradients (what ``clip_grad_norm_`` returns), without clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def clip_grad_norm(params: Sequence[nn.Parameter], max_norm: float) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (its total norm, then its scaling), except that on the
    CPU the gradients are not multiplied when the factor is exactly 1 (total norm at most
    ``max_norm``, nearly every update): ``g * 1.0`` is ``g``, and reading the factor back costs
    no device sync there. A factor other than 1 (NaN included) scales them as torch does."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads)
    if grads and grads[0].device.type == "cpu":
        factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as clip_grads_with_norm_
        if factor.item() == 1.0:
            return total
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_or_measure(groups: Iterable[ParamGroup], max_grad_norm: float | None) -> list[Tensor]:
    """Each group's gradient norm, clipping it to ``max_grad_norm`` when that is set."""
    norms = []
    for group in groups:
        if max_grad_norm is not None:
            norms.append(clip_grad_norm(group.params, max_grad_norm))
        else:  # the norm is only logged: skip clip_grad_norm_'s multiply of every gradient
            norms.append(total_grad_norm(group.params))
    return norms
