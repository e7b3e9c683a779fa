"""The one representation of a predicted return distribution, shared by every agent."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class ReturnDistribution:
    """Per-action return distributions for a batch of states.

    Every agent's head returns one of these, so acting, logging and evaluation read a
    distribution the same way whatever the agent.

    Attributes:
        values: ``[B, A, N]`` atom locations: C51's fixed support (broadcast), QR-DQN / IQN / FQF
            quantile values, expectile values, or DQN's single expected value (``N = 1``).
        probs: ``[B, A, N]`` atom weights summing to one over ``N``: C51 softmax, ``1/N`` for
            QR-DQN and IQN, ``tau[i+1] - tau[i]`` for FQF.
        taus: ``[B, N]`` quantile (or expectile) levels of the atoms, or ``None`` for C51 / DQN.
    """

    values: Tensor
    probs: Tensor
    taus: Tensor | None = None

    def q_values(self) -> Tensor:
        """Expected return per action, ``[B, A]``: the one read-off rule for every agent."""
        return (self.values.float() * self.probs.float()).sum(-1)

    @property
    def num_actions(self) -> int:
        return int(self.values.shape[1])

    def for_actions(self, actions: Tensor) -> ReturnDistribution:
        """Select one action per batch row; returns values/probs ``[B, 1, N]``."""
        idx = actions.long().view(-1, 1, 1).expand(-1, 1, self.values.shape[-1])
        return ReturnDistribution(
            values=self.values.gather(1, idx),
            probs=self.probs.gather(1, idx),
            taus=self.taus,
        )

    def detach(self) -> ReturnDistribution:
        return ReturnDistribution(
            self.values.detach(),
            self.probs.detach(),
            None if self.taus is None else self.taus.detach(),
        )


__all__ = ["ReturnDistribution"]
