"""FQF (Yang et al. 2019): fraction proposal + IQN quantile values, quantile Huber loss for the
values and the W1 fraction loss for the proposal (its own optimiser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from distrl_agents.agents.base import Agent, HeadSpec, LossOutput
from distrl_agents.agents.hparams import (
    OPTIMIZERS,
    AgentConfig,
    check_at_least,
    check_hparam,
    check_positive,
)
from distrl_agents.agents.runtime import ParamGroup
from distrl_agents.agents.targets import at_actions, bellman_target, greedy_action
from distrl_agents.losses import quantile_huber_loss
from distrl_agents.losses.fraction import (
    cumulative_fraction_entropy,
    fqf_fraction_loss,
    squared_fraction_loss,
)
from distrl_agents.networks import FQFHead
from distrl_agents.networks.heads import FRACTION_INITS
from distrl_agents.types import Batch

#: Fraction losses: ``squared`` (the authors' ``sqloss``, recommended in their README: the squared
#: W1 gradient of Proposition 1, minimised through the quantile network's dependence on tau),
#: ``direct`` (the authors' ``directbp``: Proposition 1's gradient as written, applied to the
#: fractions and summed over the batch) and ``w1_gradient`` (Kuwahara's port: the same gradient
#: with a sign correction where the quantile function is not monotonic, averaged over the batch).
FRACTION_LOSSES = ("squared", "direct", "w1_gradient")
#: What the entropy bonus measures: ``cumulative`` (the authors' code: ``sum_i -tau_i log tau_i``
#: over the inner cumulative fractions) or ``proposal`` (Kuwahara's port: the softmax's entropy).
ENTROPY_OF = ("cumulative", "proposal")
#: Where the target samples sit: ``next`` (the authors' code: the target network's own proposal
#: for ``x'``) or ``current`` (Kuwahara's port: the online fractions of ``x``).
TARGET_FRACTIONS = ("next", "current")


@dataclass(frozen=True)
class FQFConfig(AgentConfig):
    """FQF's hyperparameters. Defaults: the authors' code (microsoft/FQF, ``fqf_agent.py`` and
    ``atari_lib.fqf_network``, their README's recommended ``sqloss``); Kuwahara's PyTorch port's
    choices are named options (docs/agents.md, FQF).

    ``lr`` and the other shared optimiser fields are the quantile-value network's; the fraction
    proposal has its own optimiser (``fraction_*``)."""

    num_fractions: int = 32
    """``N``, the number of proposed fractions."""
    embedding_dim: int = 64
    """Cosine embedding size (as IQN)."""
    kappa: float = 1.0
    """Huber threshold of the quantile Huber loss."""
    fraction_lr: float = 5e-11
    """Learning rate of the fraction-proposal network: the authors' ``5e-5 * fqf_factor`` with
    their default ``fqf_factor = 1e-6`` (``run-fqf.sh`` also runs ``1e-5``: 5e-10)."""
    fraction_optimizer: str = "rmsprop_tf"
    """``rmsprop_tf`` (the paper's RMSProp in the authors' TensorFlow form: epsilon inside the
    square root, mean square starting at 1), ``rmsprop`` (PyTorch's) or ``adam``."""
    fraction_optimizer_eps: float = 1e-5
    """The fraction optimiser's epsilon."""
    fraction_rmsprop_alpha: float = 0.95
    """The fraction optimiser's RMSprop smoothing."""
    fraction_rmsprop_centered: bool = True
    """Centred RMSProp for the fractions (authors' code: ``True``)."""
    fraction_loss: str = "squared"
    """One of ``FRACTION_LOSSES`` (authors' recommended ``squared``)."""
    fraction_init: str = "variance_scaling"
    """Initialisation of the proposal layer, one of ``networks.heads.FRACTION_INITS``
    (``variance_scaling``: authors' code; ``xavier_small``: Kuwahara's port)."""
    entropy_coef: float = 0.0
    """Weight of the fraction-entropy bonus (0: the authors' ``sqloss`` has none; their
    ``directbp`` runs use ``fqf_ent * 0.001`` with ``fqf_ent`` 1e-4 or 1e-5)."""
    entropy_of: str = "cumulative"
    """What the entropy bonus measures, one of ``ENTROPY_OF``."""
    tau_hat_torso_grad: bool = True
    """Let the quantile loss's gradient reach the torso through ``tau_hat`` and the proposal
    layer (whose own weights it never trains): the authors' code. ``False``: ``tau_hat`` is a
    constant for the quantile loss (Kuwahara's port)."""
    target_fractions: str = "next"
    """Where the target samples sit, one of ``TARGET_FRACTIONS``."""
    weighted_targets: bool = False
    """Weight each target sample by its fraction width in the quantile loss (``False``: ``1/N``
    each, the paper's loss and the authors' code). See docs/agents.md, FQF."""

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
        for field, allowed in (
            ("fraction_loss", FRACTION_LOSSES),
            ("fraction_init", FRACTION_INITS),
            ("entropy_of", ENTROPY_OF),
            ("target_fractions", TARGET_FRACTIONS),
        ):
            value = getattr(self, field)
            check_hparam(value in allowed, field, f"must be one of {list(allowed)}, got {value!r}")


class FQFAgent(Agent):
    """Fully parameterised quantile function.

    Quantile values: ``Z(x, a) ~ sum_i (tau_{i+1} - tau_i) F^-1(tau_hat_i)`` (Yang et al. 2019,
    Eq. 1-2), trained with the quantile Huber loss at the online ``tau_hat`` of ``x`` against
    target samples ``r + gamma^n F^-1_target(tau'_hat_j; x', a*)``. ``target_fractions="next"``
    (the authors' code, ``_build_networks``: ``target_convnet(next_states)``): ``tau'`` is the
    target network's own proposal for ``x'``; ``"current"`` (Kuwahara's port, which shares the
    fractions "to reduce computations"): ``tau' = tau``, the online fractions of ``x``. The
    paper's loss averages the target samples with weight ``1/N`` each; ``weighted_targets=True``
    weights sample ``j`` by its fraction width ``tau'_{j+1} - tau'_j``, so that the target is the
    next state's staircase distribution itself (see the docs' FQF section).
    Bootstrap action ``a* = argmax_a sum_i (tau'_{i+1} - tau'_i) F^-1(tau'_hat_i; x', a)`` with
    ``tau'`` the selecting network's own proposal for ``x'`` (target network; online with
    ``double_dqn``), as in the authors' code (the ``ws`` weighted sum).
    Fractions: ``fraction_loss`` (see ``FRACTION_LOSSES``), minus ``entropy_coef`` times the
    entropy named by ``entropy_of``, with a separate optimiser.
    """

    name = "fqf"
    Config = FQFConfig
    config: FQFConfig
    test_sizes: ClassVar[dict[str, Any]] = {"num_fractions": 8}

    def head_spec(self) -> tuple[HeadSpec, dict[str, Any]]:
        c = self.config
        return FQFHead, {
            "num_fractions": c.num_fractions,
            "embedding_dim": c.embedding_dim,
            "fraction_init": c.fraction_init,
        }

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
        if c.tau_hat_torso_grad:  # the same fractions; gradient to the torso, not the proposal
            tau_hats = head.propose(feats, train_params=False, train_torso=True).tau_hats
        else:
            tau_hats = fr.tau_hats.detach()
        widths = (fr.taus[:, 1:] - fr.taus[:, :-1]).detach()  # [B, N]
        with self.autocast():
            z_taken = at_actions(head.quantile_values(feats, tau_hats), action)  # [B, N]
        if c.target_fractions == "next":
            target, target_widths = self.bootstrap_target(batch, None)  # [B, N] each
        else:
            target, target_widths = self.bootstrap_target(batch, fr.tau_hats.detach())
            target_widths = widths
        weights = target_widths if c.weighted_targets else None
        per_sample = quantile_huber_loss(z_taken, target, tau_hats, c.kappa, weights)  # [B]
        fraction, fraction_value = self.fraction_loss(feats.detach(), fr.taus, z_taken, action)
        if c.entropy_coef != 0.0:
            entropy = (
                cumulative_fraction_entropy(fr.taus) if c.entropy_of == "cumulative" else fr.entropy
            )
            fraction = fraction - c.entropy_coef * entropy
        q_taken = (widths * z_taken.detach()).sum(-1)  # [B], Yang et al. 2019, Eq. 1
        return LossOutput(
            per_sample=per_sample,
            q_taken=q_taken,
            aux_per_sample=fraction,
            metrics={"fraction_loss": fraction_value, "fraction_entropy": fr.entropy.detach()},
        )

    def fraction_loss(
        self, feats: Tensor, taus: Tensor, z_taken: Tensor, action: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(loss for the proposal's optimiser, its reported value)``, both ``[B]``, for the
        ``fraction_loss`` chosen; ``feats`` are detached, ``z_taken`` the values at ``tau_hat``."""
        head = cast(FQFHead, self.online.head)

        def quantiles(levels: Tensor) -> Tensor:  # [B, M] -> [B, M], taken action
            with self.autocast():
                return at_actions(head.quantile_values(feats, levels), action)

        if self.config.fraction_loss == "squared":
            return squared_fraction_loss(taus, quantiles)
        with torch.no_grad():  # F^-1(tau_i), i = 1..N-1: [B, N-1]
            z_at_taus = quantiles(taus[:, 1:-1].detach())
        direct = self.config.fraction_loss == "direct"
        loss = fqf_fraction_loss(taus, z_at_taus, z_taken.detach(), sign_corrected=not direct)
        if direct:  # the authors' directbp sums the fractions' gradients over the batch
            loss = loss * loss.shape[0]
        return loss, loss.detach()

    @torch.no_grad()
    def bootstrap_target(self, batch: Batch, tau_hats_BN: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(r + gamma^n F^-1_target(tau'_hat_j; x', a*), tau'_{j+1} - tau'_j)``, ``[B, N]``
        each (Yang et al. 2019, Algorithm 1): at ``tau_hats_BN`` if given, else at the target
        network's own proposal for ``x'`` (whose widths are returned); ``a*`` from the selecting
        network's own proposal for ``x'`` (target network; online with ``double_dqn``)."""
        next_feats = self.features(self.target, batch.next_obs)
        target_head = cast(FQFHead, self.target.head)
        own = self.head_distribution(self.target, next_feats)  # at the target's proposal for x'
        if tau_hats_BN is None:
            z_next, widths = own.values, own.probs[:, 0]  # [B, A, N], [B, N]
        else:
            with self.autocast():
                z_next = target_head.quantile_values(next_feats, tau_hats_BN)  # [B, A, N]
            widths = torch.full_like(tau_hats_BN, 1.0 / tau_hats_BN.shape[-1])
        select = self.distribution(self.online, batch.next_obs) if self.config.double_dqn else own
        z_next_star = at_actions(z_next, greedy_action(select))  # [B, N]
        return bellman_target(batch.reward, batch.discount, z_next_star), widths.float()
