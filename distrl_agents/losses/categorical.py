"""C51 categorical projection and cross-entropy (Bellemare et al. 2017)."""

from __future__ import annotations

import torch
from torch import Tensor


def categorical_projection(atoms: Tensor, probs: Tensor, support: Tensor) -> Tensor:
    """Project a weighted atom set onto a fixed, evenly spaced support.

    Bellemare et al. 2017, Eq. 7:
    ``(Phi T z)_i = sum_j [1 - |clip(T z_j, v_min, v_max) - z_i| / dz]_0^1 p_j``.

    Written as one ``[B, N, K]`` weight tensor (as Dopamine's ``project_distribution``), so there
    is no per-sample loop, atoms outside the support are clipped onto its ends, an atom exactly on
    ``z_i`` puts all its mass there, and the atoms need not be sorted.

    Args:
        atoms: ``[B, N]`` target atom locations (e.g. ``r + gamma^n z``).
        probs: ``[B, N]`` their probabilities.
        support: ``[K]`` evenly spaced support ``z_0 < ... < z_{K-1}``.

    Returns:
        ``[B, K]`` projected probabilities (fp32).
    """
    with torch.autocast(atoms.device.type, enabled=False):  # fp32 even inside bf16 autocast
        return _project(atoms, probs, support)


def _project(atoms: Tensor, probs: Tensor, support: Tensor) -> Tensor:
    support = support.float()
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (support.shape[0] - 1)
    clipped = atoms.float().clamp(v_min, v_max)  # [B, N]
    # [1 - |Tz_j - z_i| / dz]_0^1, Bellemare et al. 2017 Eq. 7.
    weight_BNK = (1.0 - (clipped.unsqueeze(-1) - support).abs() / delta_z).clamp(0.0, 1.0)
    return torch.einsum("bn,bnk->bk", probs.float(), weight_BNK)


def categorical_cross_entropy(target_probs: Tensor, log_probs: Tensor) -> Tensor:
    """``-sum_i m_i log p_i(x, a)`` per sample (Bellemare et al. 2017, Algorithm 1). ``[B]``.

    Args:
        target_probs: ``[B, K]`` projected target (no gradient needed).
        log_probs: ``[B, K]`` online log-probabilities (from ``log_softmax`` in fp32).
    """
    return -(target_probs.float() * log_probs.float()).sum(-1)
