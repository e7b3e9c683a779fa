"""The shared agent: acting, learning bookkeeping, target sync, optimisers, checkpoints.

Template method: ``Agent.learn`` runs one gradient step for every agent; a subclass supplies its
head (``head_spec``), and its Bellman target + loss (``compute_loss``). Nothing here branches on
the agent type.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from distrl_agents.agents.runtime import (
    ActingCopy,
    MaybeCompiled,
    ParamGroup,
    clip_or_measure,
    compile_mode,
    compile_update,
    frozen_copy,
    make_optimizer,
)
from distrl_agents.distribution import ReturnDistribution
from distrl_agents.networks import DistributionalNetwork, build_network, network_options
from distrl_agents.types import Batch, LearnResult

ActionValueFn = Callable[[ReturnDistribution], Tensor]

PRECISIONS = ("fp32", "bf16")
#: ``adam``; ``rmsprop`` (PyTorch's: epsilon added outside the square root); ``rmsprop_tf``
#: (TensorFlow's, as in the DQN paper and Dopamine: epsilon inside the square root, ``TFRMSprop``).
OPTIMIZERS = ("adam", "rmsprop", "rmsprop_tf")


def default_action_value(dist: ReturnDistribution) -> Tensor:
    """Greedy value of each action: the expected return ``[B, A]``."""
    return dist.q_values()


@dataclass
class LossOutput:
    """What ``compute_loss`` returns.

    Attributes:
        per_sample: ``[B]`` fp32 loss before importance weighting (the new priorities).
        q_taken: ``[B]`` online expected return of the taken action (for the ``q_mean`` metric).
        aux_per_sample: ``[B]`` an extra loss for parameters outside the main loss (FQF fractions),
            importance-weighted like the main loss but not used as priorities; or ``None``.
        metrics: extra scalar tensors to log (detached).
    """

    per_sample: Tensor
    q_taken: Tensor
    aux_per_sample: Tensor | None = None
    metrics: dict[str, Tensor] = field(default_factory=dict)


def check_hparam(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ValueError(f"invalid hparam {field_name!r}: {message}")


class Agent(ABC):
    """Base class of every agent.

    Subclasses set ``name`` and implement ``head_spec`` and ``compute_loss``; they may override
    ``param_groups`` (extra optimisers) and ``_validate``.

    Args:
        num_actions: ``A``.
        obs_shape: one observation, e.g. ``(4, 84, 84)`` uint8 frames or ``(d,)`` vectors.
        device: torch device string.
        network: network options for ``build_network`` (torso, hidden, dueling, noisy, ...).
        action_value_fn: ``ReturnDistribution -> [B, A]`` greedy value used by ``act``
            (default: expected return; pass a risk measure such as CVaR for risk-sensitive acting).
        optimizer: ``"adam"``, ``"rmsprop"`` (PyTorch's, epsilon outside the square root) or
            ``"rmsprop_tf"`` (TensorFlow's, epsilon inside the square root: the DQN paper and
            Dopamine; ``distrl_agents.agents.optim.TFRMSprop``).
        lr: learning rate.
        optimizer_eps: Adam / RMSprop epsilon.
        rmsprop_alpha: RMSprop smoothing constant (TF "decay").
        rmsprop_centered: centred RMSprop.
        rmsprop_initial_ms: starting mean square of ``rmsprop_tf`` (TensorFlow 1 / Dopamine: 1;
            the DQN paper's code: 0); unused by the other optimisers.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        double_dqn: pick the bootstrap action with the online network (van Hasselt et al. 2016).
        precision: ``"fp32"`` or ``"bf16"`` (autocast for torso and heads; losses stay fp32).
        act_precision: the precision of ``act`` (``None``: ``precision``). Acting runs on small
            batches, where bf16 may not pay for its casts even when the update gains from it.
        compile: ``off``, ``torso`` (``True``: ``torch.compile`` the torso forward), ``update``
            (compile the whole loss computation of a step) or ``graphs`` (``update`` with CUDA
            graphs on a CUDA device); falls back to eager with a warning.
        channels_last: keep conv activations in channels-last memory format.
        seed: seeds network initialisation, tau / noise sampling and epsilon-greedy draws.
    """

    name: ClassVar[str] = "base"

    def __init__(
        self,
        *,
        num_actions: int,
        obs_shape: Sequence[int],
        device: str | torch.device = "cpu",
        network: Mapping[str, Any] | None = None,
        action_value_fn: ActionValueFn | None = None,
        optimizer: str = "adam",
        lr: float = 5e-5,
        optimizer_eps: float = 0.01 / 32,
        rmsprop_alpha: float = 0.95,
        rmsprop_centered: bool = False,
        rmsprop_initial_ms: float = 1.0,
        max_grad_norm: float | None = None,
        double_dqn: bool = False,
        precision: str = "fp32",
        act_precision: str | None = None,
        compile: bool | str = False,
        channels_last: bool = False,
        seed: int = 0,
        agent_hparams: Mapping[str, Any] | None = None,
    ) -> None:
        check_hparam(int(num_actions) >= 1, "num_actions", f"must be >= 1, got {num_actions}")
        check_hparam(
            optimizer in OPTIMIZERS,
            "optimizer",
            f"must be one of {list(OPTIMIZERS)}, got {optimizer!r}",
        )
        check_hparam(float(lr) > 0, "lr", f"must be > 0, got {lr}")
        check_hparam(float(optimizer_eps) > 0, "optimizer_eps", f"must be > 0, got {optimizer_eps}")
        check_hparam(
            0 < float(rmsprop_alpha) < 1, "rmsprop_alpha", f"must be in (0, 1), got {rmsprop_alpha}"
        )
        check_hparam(
            float(rmsprop_initial_ms) >= 0,
            "rmsprop_initial_ms",
            f"must be >= 0, got {rmsprop_initial_ms}",
        )
        check_hparam(
            max_grad_norm is None or float(max_grad_norm) > 0,
            "max_grad_norm",
            f"must be > 0 or null, got {max_grad_norm}",
        )
        check_hparam(
            precision in PRECISIONS,
            "precision",
            f"must be one of {list(PRECISIONS)}, got {precision!r}",
        )
        act_precision = precision if act_precision is None else act_precision
        check_hparam(
            act_precision in PRECISIONS,
            "act_precision",
            f"must be one of {list(PRECISIONS)}, got {act_precision!r}",
        )
        self.num_actions = int(num_actions)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.device = torch.device(device)
        self.action_value_fn: ActionValueFn = action_value_fn or default_action_value
        self.optimizer = optimizer
        self.lr = float(lr)
        self.optimizer_eps = float(optimizer_eps)
        self.rmsprop_alpha = float(rmsprop_alpha)
        self.rmsprop_centered = bool(rmsprop_centered)
        self.rmsprop_initial_ms = float(rmsprop_initial_ms)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.double_dqn = bool(double_dqn)
        self.precision = precision
        self.act_precision = act_precision
        self._autocast_on = precision == "bf16"  # acting switches it to its own precision
        self.channels_last = bool(channels_last)
        self.seed = int(seed)
        self.network_options = network_options(network)
        self._validate()

        self.hparams: dict[str, Any] = {
            "num_actions": self.num_actions,
            "obs_shape": list(self.obs_shape),
            "network": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.network_options.items()
            },
            "optimizer": optimizer,
            "lr": self.lr,
            "optimizer_eps": self.optimizer_eps,
            "rmsprop_alpha": self.rmsprop_alpha,
            "rmsprop_centered": self.rmsprop_centered,
            "rmsprop_initial_ms": self.rmsprop_initial_ms,
            "max_grad_norm": self.max_grad_norm,
            "double_dqn": self.double_dqn,
            "precision": precision,
            "act_precision": act_precision,
            "compile": compile_mode(compile),
            "channels_last": self.channels_last,
            "seed": self.seed,
            **dict(agent_hparams or {}),
        }

        head, head_kwargs = self.head_spec()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            online = build_network(
                self.network_options,
                obs_shape=self.obs_shape,
                num_actions=self.num_actions,
                head=head,
                **head_kwargs,
            )
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        # torch's stubs for Module.to omit ``memory_format``, which it accepts at runtime.
        self.online: DistributionalNetwork = online.to(  # type: ignore[call-overload]
            self.device, memory_format=memory_format
        )
        self.target = frozen_copy(self.online, bf16=self.precision == "bf16")
        self._acting = ActingCopy(self.online) if self.act_precision == "bf16" else None
        mode = compile_mode(compile)
        nets = [self.online, self.target, *([self._acting.net] if self._acting else [])]
        self._torsos = {id(net): MaybeCompiled(net.torso, mode == "torso") for net in nets}
        self._loss_fn, self._cuda_graphs = compile_update(self.compute_loss, mode, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self._groups = self.param_groups()
        self.optimizers = [make_optimizer(g) for g in self._groups]
        self.num_updates = 0
        self.training = True
        self.noisy = self.online.noisy

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def head_spec(self) -> tuple[str, dict[str, Any]]:
        """The head name in ``networks.HEADS`` and its keyword arguments."""

    @abstractmethod
    def compute_loss(self, batch: Batch) -> LossOutput:
        """Prediction, Bellman target and per-sample loss for one batch (fp32)."""

    def _validate(self) -> None:
        """Check agent-specific hparams; raise ``ValueError`` naming the field."""
        return None

    def param_groups(self) -> list[ParamGroup]:
        """Optimiser groups; by default one optimiser over every online parameter."""
        return [
            ParamGroup(
                "main",
                list(self.online.parameters()),
                self.optimizer,
                self.lr,
                self.optimizer_eps,
                self.rmsprop_alpha,
                self.rmsprop_centered,
                self.rmsprop_initial_ms,
            )
        ]

    # ----------------------------------------------------------------- helpers for subclasses
    def autocast(self) -> AbstractContextManager[Any]:
        """bf16 autocast for torso and heads when ``precision == "bf16"`` (no-op otherwise);
        inside ``act``, when ``act_precision == "bf16"``."""
        return torch.autocast(
            device_type=self.device.type,
            dtype=torch.bfloat16,
            enabled=self._autocast_on,
        )

    def features(self, net: DistributionalNetwork, obs: Tensor) -> Tensor:
        """Torso features of ``obs`` through ``net`` (online or target), possibly compiled."""
        obs = self.to_device(obs)
        torso = self._torsos.get(id(net), net.torso)
        with self.autocast():
            return torso(obs)

    def distribution(
        self, net: DistributionalNetwork, obs: Tensor, **head_kwargs: Any
    ) -> ReturnDistribution:
        """Full forward pass (head's normal settings unless overridden)."""
        feats = self.features(net, obs)
        with self.autocast():
            return net.head(feats, generator=self.generator, **head_kwargs)

    def to_device(self, obs: Tensor) -> Tensor:
        obs = obs.to(self.device, non_blocking=True)
        if obs.dtype == torch.float64:
            obs = obs.float()
        if self.channels_last and obs.dim() == 4:
            obs = obs.contiguous(memory_format=torch.channels_last)
        return obs

    @torch.no_grad()
    def next_actions(
        self, next_obs: Tensor, target_dist: ReturnDistribution | None = None, **head_kwargs: Any
    ) -> Tensor:
        """Greedy bootstrap action ``a* = argmax_a Q(x', a)`` ``[B]``: from the target network
        (``target_dist`` if the caller already has it), or from the online network with
        ``double_dqn`` (van Hasselt et al. 2016, Eq. 4)."""
        if self.double_dqn:
            dist = self.distribution(self.online, next_obs, **head_kwargs)
        elif target_dist is not None:
            dist = target_dist
        else:
            dist = self.distribution(self.target, next_obs, **head_kwargs)
        return dist.q_values().argmax(dim=-1)

    # ----------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, obs: np.ndarray | Tensor, epsilon: float = 0.0) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations ``[N, *obs_shape]`` -> int64 ``[N]``.

        One forward pass for all environments; the greedy value is ``action_value_fn(dist)``.
        With noisy layers in training mode, fresh noise is drawn for every call, as in Rainbow
        (Hessel et al. 2018; Fortunato et al. 2018, Algorithm 1: a new noise sample for each
        action), from the agent's seeded generator; in eval mode the mean weights act.
        """
        obs_t = torch.as_tensor(obs)
        if obs_t.dim() == len(self.obs_shape):
            obs_t = obs_t.unsqueeze(0)
        net = self.acting_network()
        if self.noisy and self.training:
            # On the network that acts: under bf16 that is the bf16 copy, whose noise buffers
            # the next refresh overwrites with the online ones (``learn`` redraws those anyway).
            net.reset_noise(self.generator)
        self._autocast_on = self.act_precision == "bf16"
        try:
            dist = self.distribution(net, obs_t)
            values = self.action_value_fn(dist).float()
        finally:
            self._autocast_on = self.precision == "bf16"
        actions = values.argmax(dim=-1).cpu().numpy().astype(np.int64)
        if epsilon > 0:
            num_envs: int = actions.shape[0]  # an int, not Any: picks rng.random's array overload
            explore = self.rng.random(num_envs) < epsilon
            n = int(explore.sum())
            if n:
                actions[explore] = self.rng.integers(0, self.num_actions, size=n)
        return actions

    def weights_changed(self) -> None:
        """Mark the online weights as changed (the acting copy is refreshed before next use)."""
        if self._acting is not None:
            self._acting.mark_changed()

    def acting_network(self) -> DistributionalNetwork:
        """The network ``act`` runs: the online network, or acting in bf16 its bf16-stored copy
        (``runtime.ActingCopy``), refreshed whenever the online weights may have changed."""
        return self.online if self._acting is None else self._acting.network()

    # ----------------------------------------------------------------- learning
    def learn(self, batch: Batch) -> LearnResult:
        """One gradient step; returns the detached per-sample loss ``[B]`` and scalar metrics.

        Nothing here waits for the device: the metrics stay a device tensor until read
        (``LearnResult.metrics``), so on a GPU the host goes on (stepping the games) while the
        update runs.
        """
        self.online.train(self.training)
        if self.noisy:
            self.online.reset_noise(self.generator)
            self.target.reset_noise(self.generator)
        if self._cuda_graphs:
            # A new iteration: the graphs may now overwrite the previous update's outputs.
            torch.compiler.cudagraph_mark_step_begin()
        out: LossOutput = self._loss_fn(batch)
        weights = batch.weights.to(self.device).float()
        per_sample = out.per_sample.float()
        loss = (weights * per_sample).mean()  # importance-weighted mean (Schaul et al. 2016)
        total = loss
        if out.aux_per_sample is not None:
            total = total + (weights * out.aux_per_sample.float()).mean()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        total.backward()
        norms = clip_or_measure(self._groups, self.max_grad_norm)
        for opt in self.optimizers:
            opt.step()
        self.weights_changed()
        self.num_updates += 1
        names = ["loss", "q_mean", "grad_norm", *out.metrics]
        # Stays on the device: no host sync per update (the loop reads it back per log period).
        values = torch.stack(
            [
                loss.detach(),
                out.q_taken.detach().float().mean(),
                norms[0].detach().float(),
                *(v.detach().float().mean() for v in out.metrics.values()),
            ]
        )
        loss_out = per_sample.detach()
        if self._cuda_graphs:  # graph outputs live in memory the next replay overwrites
            loss_out, values = loss_out.clone(), values.clone()
        return LearnResult(loss=loss_out, metric_names=names, metric_values=values)

    def sync_target(self) -> None:
        """Copy the online parameters into the target network."""
        self.target.load_state_dict(self.online.state_dict())

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Agent:
        self.training = mode
        self.online.train(mode)
        self.target.train(mode)
        return self

    def eval(self) -> Agent:
        return self.train(False)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.online.parameters()

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hparams": copy.deepcopy(self.hparams),
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "num_updates": self.num_updates,
            "torch_generator": self.generator.get_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "training": self.training,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"checkpoint is for agent {state.get('name')!r}, not {self.name!r}; "
                f"build a {state.get('name')!r} agent to load it"
            )
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.weights_changed()
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError("checkpoint optimiser count does not match this agent's hparams")
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(torch.as_tensor(state["torch_generator"], dtype=torch.uint8).cpu())
        self.rng.bit_generator.state = state["numpy_rng"]
        self.train(bool(state.get("training", True)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, hparams={self.hparams!r})"
