"""The shared agent: acting, learning bookkeeping, target sync, checkpoints.

Template method: ``Agent.learn`` runs one gradient step for every agent; a subclass supplies its
hyperparameters (``Config``, a frozen ``AgentConfig`` dataclass), its head (``head_spec``), and
its Bellman target + loss (``compute_loss``). Nothing here branches on the agent type; the
machinery (compiling, bf16 copies, optimisers) is in ``agents/runtime.py``.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from distrl_agents.agents.hparams import AgentConfig, check_hparam
from distrl_agents.agents.runtime import (
    ActingCopy,
    MaybeCompiled,
    ParamGroup,
    clip_or_measure,
    compile_update,
    frozen_copy,
    make_optimizer,
)
from distrl_agents.distribution import ReturnDistribution
from distrl_agents.networks import DistributionalNetwork, build_network, network_options
from distrl_agents.networks.torsos import frames_to_float
from distrl_agents.types import Batch, LearnResult

ActionValueFn = Callable[[ReturnDistribution], Tensor]
#: What ``head_spec`` names: a head class, or its name in ``networks.HEADS``.
HeadSpec = type[nn.Module] | str


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


class Agent(ABC):
    """Base class of every agent.

    Subclasses set ``name``, ``Config`` (their ``AgentConfig`` dataclass) and ``test_sizes``,
    and implement ``head_spec`` and ``compute_loss``; they may override ``param_groups`` (extra
    optimisers). The registry (``agents/__init__.py``) names the class; nothing else lists agents.
    The hyperparameters are ``agent.config`` (``agent.config.lr``).

    Args:
        config: the agent's hyperparameters (``make_agent`` builds it from keyword arguments).
        num_actions: ``A``.
        obs_shape: one observation, e.g. ``(4, 84, 84)`` uint8 frames or ``(d,)`` vectors.
        device: torch device string.
        network: network options for ``build_network`` (torso, hidden, dueling, noisy, ...).
        action_value_fn: ``ReturnDistribution -> [B, A]`` greedy value used by ``act``
            (default: expected return; pass a risk measure such as CVaR for risk-sensitive acting).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[AgentConfig]] = AgentConfig
    #: Small sizes for fast tests: overrides of ``Config``'s defaults (fewer atoms, quantiles,
    #: samples) that every parametrised test, the recorded behaviour and the short training runs
    #: build the agent with. Only sizes: the agent's own checks and the optimiser stay its preset's.
    test_sizes: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        config: AgentConfig,
        *,
        num_actions: int,
        obs_shape: Sequence[int],
        device: str | torch.device = "cpu",
        network: Mapping[str, Any] | None = None,
        action_value_fn: ActionValueFn | None = None,
    ) -> None:
        check_hparam(int(num_actions) >= 1, "num_actions", f"must be >= 1, got {num_actions}")
        self.config = config
        self.num_actions = int(num_actions)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.device = torch.device(device)
        self.network_options = network_options(network)
        self.action_value_fn: ActionValueFn = action_value_fn or default_action_value
        # Everything that rebuilds this agent (sizes, network options, every config field), as
        # plain data: saved in checkpoints (under the key "hparams", the checkpoint layout).
        self.spec: dict[str, Any] = {
            "num_actions": self.num_actions,
            "obs_shape": list(self.obs_shape),
            "network": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.network_options.items()
            },
            **dataclasses.asdict(config),
        }
        self._autocast_on = config.precision == "bf16"  # acting switches it to its own precision
        self.online = self._build_online()
        self.target = frozen_copy(self.online, bf16=config.precision == "bf16")
        self._acting = ActingCopy(self.online) if config.act_precision == "bf16" else None
        nets = [self.online, self.target, *([self._acting.net] if self._acting else [])]
        self._torsos = {id(n): MaybeCompiled(n.torso, config.compile == "torso") for n in nets}
        self._loss_fn, self._cuda_graphs = compile_update(
            self.compute_loss, str(config.compile), self.device
        )
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self._groups = self.param_groups()
        self.optimizers = [make_optimizer(g) for g in self._groups]
        self.num_updates = 0
        self.training = True
        self.noisy = self.online.noisy
        # Inside an eager ``learn``: each uint8 frame tensor's float conversion, by tensor.
        self._frames: dict[int, tuple[Tensor, Tensor]] | None = None

    def _build_online(self) -> DistributionalNetwork:
        """The online network, initialised from the agent's seed, on its device."""
        head, head_kwargs = self.head_spec()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            online = build_network(
                self.network_options,
                obs_shape=self.obs_shape,
                num_actions=self.num_actions,
                head=head,
                **head_kwargs,
            )
        channels_last = self.config.channels_last
        memory_format = torch.channels_last if channels_last else torch.preserve_format
        # torch's stubs for Module.to omit ``memory_format``, which it accepts at runtime.
        return online.to(self.device, memory_format=memory_format)  # type: ignore[call-overload]

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        """The head class (or, for old code, its name in ``networks.HEADS``) and the head's own
        keyword arguments; ``build_network`` adds the network options (``hidden``, ...)."""

    @abstractmethod
    def compute_loss(self, batch: Batch) -> LossOutput:
        """Prediction, Bellman target and per-sample loss for one batch (fp32)."""

    def param_groups(self) -> list[ParamGroup]:
        """Optimiser groups; by default one optimiser over every online parameter."""
        return [self.main_group(list(self.online.parameters()))]

    def main_group(self, params: list[nn.Parameter]) -> ParamGroup:
        """The main optimiser's group over ``params``, from the shared optimiser fields."""
        c = self.config
        return ParamGroup(
            "main",
            params,
            c.optimizer,
            c.lr,
            c.optimizer_eps,
            c.rmsprop_alpha,
            c.rmsprop_centered,
            c.rmsprop_initial_ms,
        )

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
        obs = self._shared_frames(obs)
        torso = self._torsos.get(id(net), net.torso)
        with self.autocast():
            return torso(obs)

    def _shared_frames(self, obs: Tensor) -> Tensor:
        """``obs`` on the device; inside an eager ``learn``, uint8 frames as the torso's floats
        (``frames_to_float``, under the agent's autocast), converted once per tensor and shared by
        every pass over it (double Q runs the target and the online network on ``next_obs``).
        The torsos pass such floats through, so the passes see the values they would make."""
        shared = self._frames
        if shared is None or obs.dtype != torch.uint8:
            return self.to_device(obs)
        hit = shared.get(id(obs))
        if hit is not None and hit[0] is obs:
            return hit[1]
        with self.autocast():
            frames = frames_to_float(self.to_device(obs))
        shared[id(obs)] = (obs, frames)
        return frames

    def distribution(
        self, net: DistributionalNetwork, obs: Tensor, **head_kwargs: Any
    ) -> ReturnDistribution:
        """Full forward pass (head's normal settings unless overridden)."""
        return self.head_distribution(net, self.features(net, obs), **head_kwargs)

    def head_distribution(
        self, net: DistributionalNetwork, features: Tensor, **head_kwargs: Any
    ) -> ReturnDistribution:
        """The head of ``net`` on torso ``features`` (sampling taus from the agent's generator)."""
        with self.autocast():
            return net.head(features, generator=self.generator, **head_kwargs)

    def to_device(self, obs: Tensor) -> Tensor:
        obs = obs.to(self.device, non_blocking=True)
        if obs.dtype == torch.float64:
            obs = obs.float()
        if self.config.channels_last and obs.dim() == 4:
            obs = obs.contiguous(memory_format=torch.channels_last)
        return obs

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
        self._autocast_on = self.config.act_precision == "bf16"
        try:
            dist = self.distribution(net, obs_t)
            values = self.action_value_fn(dist).float()
        finally:
            self._autocast_on = self.config.precision == "bf16"
        actions = values.argmax(dim=-1).cpu().numpy().astype(np.int64)
        if epsilon > 0:
            num_envs: int = actions.shape[0]  # an int, not Any: picks rng.random's array overload
            explore = self.rng.random(num_envs) < epsilon
            n = int(explore.sum())
            if n:
                actions[explore] = self.rng.integers(0, self.num_actions, size=n)
        return actions

    @property
    def update_compiled(self) -> bool:
        """Whether learning steps run the compiled update (``compile=update`` / ``graphs``, and
        compilation has not failed and fallen back to eager)."""
        return self._loss_fn.compiled is not None

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
        # Eager: frames converted once per batch tensor (``_shared_frames``); a compiled update
        # traces the conversion into its graph instead.
        self._frames = {} if self._loss_fn.compiled is None else None
        try:
            out: LossOutput = self._loss_fn(batch)
        finally:
            self._frames = None
        weights = batch.weights.to(self.device).float()
        per_sample = out.per_sample.float()
        weighted = weights * per_sample  # importance weights (Schaul et al. 2016)
        loss = weighted.mean()  # logged whatever the reduction
        # loss_reduction: the batch mean, or the DQN paper's unscaled sum (batch_size x the mean).
        reduce = torch.sum if self.config.loss_reduction == "sum" else torch.mean
        total = loss if reduce is torch.mean else reduce(weighted)
        if out.aux_per_sample is not None:
            total = total + reduce(weights * out.aux_per_sample.float())
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        total.backward()
        norms = clip_or_measure(self._groups, self.config.max_grad_norm)
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
            "hparams": copy.deepcopy(self.spec),
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
        for which, net in (("online", self.online), ("target", self.target)):
            _check_layout(net, state[which], which)
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.weights_changed()
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError("checkpoint optimiser count does not match this agent's hparams")
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
            _own_state_in_param_layouts(opt)
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(torch.as_tensor(state["torch_generator"], dtype=torch.uint8).cpu())
        self.rng.bit_generator.state = state["numpy_rng"]
        self.train(bool(state.get("training", True)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, spec={self.spec!r})"


def _own_state_in_param_layouts(opt: torch.optim.Optimizer) -> None:
    """Give the optimiser its own copy of each per-parameter state tensor (Adam's moments and
    step counts), each moment in its parameter's memory layout.

    ``Optimizer.load_state_dict`` keeps the given tensors where their dtype and device already
    fit, so two agents loaded from one state dict would share (and both advance) the same
    moments. And a checkpoint keeps the layout its run trained in: loaded into an agent whose
    convolution weights are channels-last while the saved moments are not (or the reverse),
    torch's fused CPU Adam pairs the elements of the two layouts by memory position and updates
    each weight with another weight's moments (1.4x the size of the update apart from the
    single-tensor Adam, torch 2.13)."""
    for group in opt.param_groups:
        for param in group["params"]:
            state = opt.state.get(param, {})
            for key, value in state.items():
                if not isinstance(value, torch.Tensor):
                    continue
                if value.shape == param.shape:
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
                else:
                    state[key] = value.clone()


def _check_layout(net: nn.Module, saved: Mapping[str, Any], which: str) -> None:
    """Refuse, in one message, a checkpoint whose tensors do not fit ``net`` (names or shapes):
    written by code with another network layout, or its settings edited since."""
    own = net.state_dict()
    problems = [f"{k} is missing" for k in own if k not in saved]
    problems += [f"{k} is not in this network" for k in saved if k not in own]
    problems += [
        f"{k} has shape {tuple(saved[k].shape)}, this network's {tuple(own[k].shape)}"
        for k in own
        if k in saved
        and hasattr(saved[k], "shape")
        and tuple(saved[k].shape) != tuple(own[k].shape)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(
            f"the checkpoint's {which} network does not fit the network these settings build: "
            f"{'; '.join(problems[:3])}{more}. It was written by a version of distrl-agents "
            "with another network layout, or its saved settings were edited: load it with the "
            "version that wrote it (a run's config.json names it under resolved.code), or start "
            "a new run (another run_dir)"
        )
