"""Target histograms of a scalar target on fixed bins (Farebrother et al. 2024, "Stop Regressing:
Training Value Functions via Classification for Scalable Deep RL", ICML): HL-Gauss and two-hot.

A value head with ``m`` bins of width ``zeta = (v_max - v_min) / m`` on ``[v_min, v_max]``
(edges ``b_0 = v_min < ... < b_m = v_max``, centres ``z_i = (b_i + b_{i+1}) / 2``) is trained by
the cross-entropy against a histogram whose mean is (about) the scalar target ``y``:

- **HL-Gauss** (the histogram loss with a Gaussian, Imani & White 2018, as Farebrother et al.
  2024 use it): the mass a Gaussian ``N(y, sigma^2)`` truncated to ``[v_min, v_max]`` puts on
  each bin, ``p_i = (Phi((b_{i+1} - y) / sigma) - Phi((b_i - y) / sigma)) /
  (Phi((b_m - y) / sigma) - Phi((b_0 - y) / sigma))``, with ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``
  (the paper's Appendix listing computes it with ``erf`` on the edges, as here).
- **Two-hot**: ``y`` split between its two neighbouring centres so that the mean is exactly
  ``y``; this is C51's projection (Bellemare et al. 2017, Eq. 7) of one atom at ``y``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from distrl_agents.losses.categorical import categorical_projection


def hl_gauss_probs(target_B: Tensor, edges: Tensor, sigma: float) -> Tensor:
    """The HL-Gauss histogram of ``N(y, sigma^2)`` truncated to the bins, ``[B, m]`` fp32.

    Args:
        target_B: ``[B]`` scalar targets ``y`` (the caller clips them to ``[b_0, b_m]``).
        edges: ``[m + 1]`` increasing bin edges ``b_0 .. b_m``.
        sigma: the Gaussian's standard deviation (> 0), in return units.
    """
    with torch.autocast(target_B.device.type, enabled=False):  # fp32 inside bf16 autocast
        y_B1 = target_B.float().unsqueeze(-1)
        # 2 Phi((b - y) / sigma) - 1 at every edge [B, m + 1]; the factor 2 and the -1 cancel.
        cdf = torch.special.erf((edges.float() - y_B1) / (math.sqrt(2.0) * sigma))
        mass = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0.0)  # [B, m]
        return mass / (cdf[:, -1:] - cdf[:, :1])


def two_hot_probs(target_B: Tensor, centres: Tensor) -> Tensor:
    """``y`` split between its two neighbouring centres (mean exactly ``y`` once clipped to
    ``[z_0, z_{m-1}]``, which this does), ``[B, m]`` fp32.

    Args:
        target_B: ``[B]`` scalar targets.
        centres: ``[m]`` evenly spaced bin centres.
    """
    atoms_B1 = target_B.float().unsqueeze(-1)
    return categorical_projection(atoms_B1, torch.ones_like(atoms_B1), centres)


__all__ = ["hl_gauss_probs", "two_hot_probs"]
