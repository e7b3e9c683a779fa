"""FQF (Yang et al. 2019): fraction proposal + IQN quantile values, quantile Huber loss for the
values and the W1 fraction loss for the proposal (its own optimiser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from distrl_agents.agents.base import Agent, LossOutput
from distrl_agents.agents.hparams import (
    OPTIMIZERS,
    AgentConfig,
    check_at_least,
    check_hparam,
    check_positive,
)
from distrl_agents.agents.runtime import ParamGroup
from distrl_agents.agents.targets import at_actions, bellman_target, greedy_action
from distrl_agents.losses import fqf_fraction_loss, quantile_huber_loss
from distrl_agents.networks import FQFHead
from distrl_agents.types import Batch


@dataclass(frozen=True)
class FQFConfig(AgentConfig):
    """FQF's hyperparameters (Yang et al. 2019, Sec. 5; fraction optimiser: the authors' code).

    ``lr`` and the other shared optimiser fields are the quantile-value network's; the fraction
    proposal has its own optimiser (``fraction_*``)."""

    num_fractions: int = 32
    """``N``, the number of proposed fractions."""
    embedding_dim: int = 64
    """Cosine embedding size (as IQN)."""
    kappa: float = 1.0
    """Huber threshold of the quantile Huber loss."""
    fraction_lr: float = 2.5e-9
    """Learning rate of the fraction-proposal network (published code: 5e-10 to 2.5e-9)."""
    fraction_optimizer: str = "rmsprop_tf"
    """``rmsprop_tf`` (the paper's RMSProp in the authors' TensorFlow form: epsilon inside the
    square root, mean square starting at 1), ``rmsprop`` (PyTorch's) or ``adam``."""
    fraction_optimizer_eps: float = 1e-5
    """The fraction optimiser's epsilon."""
    fraction_rmsprop_alpha: float = 0.95
    """The fraction optimiser's RMSprop smoothing."""
    fraction_rmsprop_centered: bool = True
    """Centred RMSProp for the fractions (authors' code: ``True``)."""
    entropy_coef: float = 0.0
    """Weight of the fraction-entropy bonus (0; published code uses 0 to 10)."""
    weighted_targets: bool = False
    """Weight each target sample by its fraction width in the quantile loss (``False``: ``1/N``
    each, the paper's loss and the authors' code)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 2, "num_fractions")
        check_at_least(self, 1, "embedding_dim")
        check_at_least(self, 0, "kappa")
        check_positive(self, "fraction_lr")
        check_hparam(
            self.fraction_optimizer in OPTIMIZERS,
            "fraction_optimizer",
            f"must be one of {list(OPTIMIZERS)}, got {self.fraction_optimizer!r}",
        )
        check_positive(self, "fraction_optimizer_eps")
        check_hparam(
            0 < self.fraction_rmsprop_alpha < 1, "fraction_rmsprop_alpha", "must be in (0, 1)"
        )


class FQFAgent(Agent):
    """Fully parameterised quantile function.

    Quantile values: ``Z(x, a) ~ sum_i (tau_{i+1} - tau_i) F^-1(tau_hat_i)`` (Yang et al. 2019,
    Eq. 1-2), trained with the quantile Huber loss at ``tau_hat`` against target samples
    ``r + gamma^n F^-1_target(tau_hat_j; x', a*)`` taken at the same (online, current-state)
    fractions ``tau_hat_j`` (as Kuwahara's port, which shares the fractions "to reduce
    computations"; the authors' code evaluates the target network at its own proposal for
    ``x'``). Either way the target samples sit at non-uniform fractions, and the paper's loss
    averages them with weight ``1/N`` each; ``weighted_targets=True`` weights sample ``j`` by its
    fraction width ``tau_{j+1} - tau_j`` instead (see the docs' FQF section).
    Bootstrap action ``a* = argmax_a sum_i (tau'_{i+1} - tau'_i) F^-1(tau'_hat_i; x', a)`` with
    ``tau'`` the target network's own proposal for ``x'`` (the online network's with
    ``double_dqn``), as in the authors' code (microsoft/FQF, ``fqf_agent.py``,
    ``_build_networks``: ``target_convnet(next_states)``, the ``ws`` weighted sum).
    Fractions: the W1 gradient of Proposition 1 (``fqf_fraction_loss``), minus ``entropy_coef``
    times the proposal entropy, with a separate optimiser.
    """

    name = "fqf"
    Config = FQFConfig
    config: FQFConfig

    def head_spec(self) -> tuple[str, dict[str, Any]]:
        c = self.config
        return "fqf", {"num_fractions": c.num_fractions, "embedding_dim": c.embedding_dim}

    def param_groups(self) -> list[ParamGroup]:
        head = cast(FQFHead, self.online.head)  # head_spec() builds an FQF head
        fraction = list(head.fraction_proposal.parameters())
        fraction_ids = {id(p) for p in fraction}
        main = [p for p in self.online.parameters() if id(p) not in fraction_ids]
        c = self.config
        return [
            self.main_group(main),  # every parameter but the fraction proposal's
            ParamGroup(
                "fraction",
                fraction,
                c.fraction_optimizer,
                c.fraction_lr,
                c.fraction_optimizer_eps,
                c.fraction_rmsprop_alpha,
                c.fraction_rmsprop_centered,
            ),
        ]

    def compute_loss(self, batch: Batch) -> LossOutput:
        action = batch.action.to(self.device)
        c = self.config
        head = cast(FQFHead, self.online.head)  # head_spec() builds FQF heads
        feats = self.features(self.online, batch.obs)
        fr = head.propose(feats)  # reads detached features: taus [B, N+1], tau_hats [B, N]
        tau_hats = fr.tau_hats.detach()
        with self.autocast():
            z_taken = at_actions(head.quantile_values(feats, tau_hats), action)  # [B, N]
            with torch.no_grad():  # F^-1(tau_i), i = 1..N-1, for the fraction loss: [B, N-1]
                inner_taus = fr.taus[:, 1:-1].detach()
                z_at_taus = at_actions(head.quantile_values(feats.detach(), inner_taus), action)
        target = self.bootstrap_target(batch, tau_hats)  # [B, N]
        widths = (fr.taus[:, 1:] - fr.taus[:, :-1]).detach()  # [B, N] P(target sample j)
        weights = widths if c.weighted_targets else None
        per_sample = quantile_huber_loss(z_taken, target, tau_hats, c.kappa, weights)  # [B]
        fraction = fqf_fraction_loss(
            fr.taus, z_at_taus, z_taken.detach(), fr.entropy, c.entropy_coef
        )
        q_taken = (widths * z_taken.detach()).sum(-1)  # [B], Yang et al. 2019, Eq. 1
        return LossOutput(
            per_sample=per_sample,
            q_taken=q_taken,
            aux_per_sample=fraction,
            metrics={"fraction_loss": fraction.detach(), "fraction_entropy": fr.entropy.detach()},
        )

    @torch.no_grad()
    def bootstrap_target(self, batch: Batch, tau_hats_BN: Tensor) -> Tensor:
        """``r + gamma^n F^-1_target(tau_hat_j; x', a*)`` ``[B, N]`` at the online fractions
        (Yang et al. 2019, Algorithm 1); ``a*`` from the target network's own proposal for
        ``x'`` (the online network's with ``double_dqn``)."""
        next_feats = self.features(self.target, batch.next_obs)
        with self.autocast():
            target_head = cast(FQFHead, self.target.head)
            z_next = target_head.quantile_values(next_feats, tau_hats_BN)  # [B, A, N]
        select = (  # [B, A, N] at the selecting network's own fractions
            self.distribution(self.online, batch.next_obs)
            if self.config.double_dqn
            else self.head_distribution(self.target, next_feats)
        )
        z_next_star = at_actions(z_next, greedy_action(select))  # [B, N]
        return bellman_target(batch.reward, batch.discount, z_next_star)
