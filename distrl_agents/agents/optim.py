"""TensorFlow-style RMSProp: epsilon inside the square root.

The DQN paper (Mnih et al. 2015, the DeepMind Lua code) and Dopamine (``tf.train.RMSPropOptimizer``,
``agents/dqn/configs/dqn.gin``) divide the gradient by ``sqrt(ms - mg^2 + eps)`` (centred) or
``sqrt(ms + eps)``; ``torch.optim.RMSprop`` divides by ``sqrt(ms - mg^2) + eps``. For a gradient
``g`` much smaller than ``sqrt(eps)`` the two differ by orders of magnitude: with eps 1e-5 and a
steady gradient, PyTorch's step is ``lr * sign(g)`` scale while TF's is ``lr * g / sqrt(eps)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class TFRMSprop(torch.optim.Optimizer):
    """RMSProp with epsilon inside the square root (TensorFlow 1 ``ApplyCenteredRMSProp``).

    Per parameter, with gradient ``g``::

        ms  <- alpha * ms + (1 - alpha) * g^2
        mg  <- alpha * mg + (1 - alpha) * g                      (centred only)
        mom <- momentum * mom + lr * g / sqrt(ms - mg^2 + eps)   (centred; else sqrt(ms + eps))
        w   <- w - mom

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        alpha: decay of the moving averages (TF's ``decay``).
        eps: added to the mean square **inside** the square root.
        momentum: TF's ``momentum`` (0 in the DQN paper and in Dopamine).
        centered: subtract the squared mean gradient (Graves 2013; DQN, Dopamine).
        initial_mean_square: starting value of ``ms``: 1.0 in TensorFlow 1's
            ``RMSPropOptimizer`` (Dopamine), 0.0 in the DQN paper's Lua code and in Keras.

    The centred variance ``ms - mg^2`` is non-negative in exact arithmetic; it is clamped at 0
    before ``eps`` is added so that fp32 rounding can never take a square root of a negative
    number (TF does not clamp; the results agree wherever TF's are finite).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float,
        alpha: float = 0.9,
        eps: float = 1e-10,
        momentum: float = 0.0,
        centered: bool = False,
        initial_mean_square: float = 1.0,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"invalid lr {lr}: must be > 0")
        if not 0 < alpha < 1:
            raise ValueError(f"invalid alpha {alpha}: must be in (0, 1)")
        if not eps > 0:
            raise ValueError(f"invalid eps {eps}: must be > 0")
        if not momentum >= 0:
            raise ValueError(f"invalid momentum {momentum}: must be >= 0")
        if not initial_mean_square >= 0:
            raise ValueError(f"invalid initial_mean_square {initial_mean_square}: must be >= 0")
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "momentum": momentum,
            "centered": centered,
            "initial_mean_square": initial_mean_square,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            momentum, centered = group["momentum"], group["centered"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("TFRMSprop does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.full_like(
                        p, group["initial_mean_square"], memory_format=torch.preserve_format
                    )
                    if centered:
                        state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format
                        )
                state["step"] += 1
                square_avg: Tensor = state["square_avg"]
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                if centered:
                    grad_avg: Tensor = state["grad_avg"]
                    grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
                    var = square_avg.addcmul(grad_avg, grad_avg, value=-1).clamp_(min=0)
                else:
                    var = square_avg.clone()
                denom = var.add_(eps).sqrt_()  # eps inside the square root (TF)
                if momentum > 0:
                    buf: Tensor = state["momentum_buffer"]
                    buf.mul_(momentum).addcdiv_(grad, denom, value=lr)
                    p.sub_(buf)
                else:
                    p.addcdiv_(grad, denom, value=-lr)
        return loss
