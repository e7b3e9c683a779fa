"""The pieces of every agent's Bellman target, as pure functions.

Each agent's ``compute_loss`` reads: predict the taken action's atoms (``at_actions``), pick the
greedy bootstrap action from a selector distribution (``greedy_action``: the target network's,
or the online network's for double Q), read the bootstrap atoms of that action, and push them
through ``bellman_target``. Shapes: ``B`` batch, ``A`` actions, ``N`` atoms per action.
"""

from __future__ import annotations

from torch import Tensor

from distrl_agents.distribution import ReturnDistribution


def at_actions(values_BAN: Tensor, action_B: Tensor) -> Tensor:
    """The atoms of one action per row: ``[B, A, N]``, ``[B]`` -> ``[B, N]``.

    The same gather as ``ReturnDistribution.for_actions``, for tensors that are not a whole
    distribution (logits, quantile values at chosen fractions)."""
    idx_B1N = action_B.long().view(-1, 1, 1).expand(-1, 1, values_BAN.shape[-1])
    return values_BAN.gather(1, idx_B1N).squeeze(1)


def greedy_action(selector: ReturnDistribution) -> Tensor:
    """The bootstrap action ``a* = argmax_a Q(x', a)``, ``[B]``, of ``selector``.

    Q-learning bootstraps from the target network's own greedy action (Mnih et al. 2015); double
    Q-learning passes the online network's distribution at ``x'`` as the selector and evaluates
    ``a*`` with the target network (van Hasselt et al. 2016, Eq. 4)."""
    return selector.q_values().argmax(dim=-1)


def bellman_target(reward_B: Tensor, discount_B: Tensor, next_values: Tensor) -> Tensor:
    """The distributional Bellman target ``T z = r + discount * z``, ``[B, N]`` fp32.

    ``reward`` is the n-step discounted reward sum and ``discount`` the bootstrap discount
    ``gamma^m`` (zero where the window reached a terminal), both ``[B]`` from the replay batch.
    ``next_values``: ``[B, N]`` bootstrap atoms, or ``[N]`` atoms shared by all rows (C51's
    support); the target lives on their device.
    """
    reward_B1 = reward_B.to(next_values.device).float().unsqueeze(1)
    discount_B1 = discount_B.to(next_values.device).float().unsqueeze(1)
    return reward_B1 + discount_B1 * next_values


__all__ = ["at_actions", "bellman_target", "greedy_action"]
