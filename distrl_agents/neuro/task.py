"""The variable-magnitude task of Dabney et al. 2020 (Nature), Fig. 2-4.

Mice received one of seven reward magnitudes on each trial. The paper states the magnitudes
(0.1, 0.3, 1.2, 2.5, 5, 10, 20 microlitres) but not, in its text, how often each was given, so
the distribution is an input here; the default is uniform over the seven magnitudes (a stated
choice of this reproduction, not the paper's measured frequencies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from distrl_agents.expectiles import expectiles as _expectiles

__all__ = ["REWARD_MAGNITUDES", "VariableMagnitudeTask"]

REWARD_MAGNITUDES: tuple[float, ...] = (0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0)  # microlitres


@dataclass(frozen=True)
class VariableMagnitudeTask:
    """A discrete reward distribution over ``magnitudes`` with probabilities ``probs``.

    Attributes:
        magnitudes: reward sizes (microlitres), increasing.
        probs: their probabilities (``None``: uniform, the default of this reproduction).
    """

    magnitudes: tuple[float, ...] = REWARD_MAGNITUDES
    probs: tuple[float, ...] | None = None
    _p: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mags = np.asarray(self.magnitudes, dtype=np.float64)
        if mags.ndim != 1 or mags.size < 2 or np.any(np.diff(mags) <= 0):
            raise ValueError(
                f"magnitudes must be >= 2 strictly increasing values; got {self.magnitudes}"
            )
        if self.probs is None:
            p = np.full(mags.size, 1.0 / mags.size)
        else:
            p = np.asarray(self.probs, dtype=np.float64)
            if p.shape != mags.shape or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError(
                    f"probs must be {mags.size} non-negative numbers summing to 1; got {self.probs}"
                )
        object.__setattr__(self, "_p", p)

    @property
    def p(self) -> np.ndarray:
        """Probabilities as an array ``[R]``."""
        return self._p.copy()

    @property
    def values(self) -> np.ndarray:
        return np.asarray(self.magnitudes, dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.values @ self._p)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` i.i.d. rewards ``[n]``."""
        return rng.choice(self.values, size=n, p=self._p)

    def expectiles(self, taus: Sequence[float] | np.ndarray) -> np.ndarray:
        """Exact expectiles of the task distribution at ``taus`` (``[K]``)."""
        t = torch.as_tensor(np.asarray(taus, dtype=np.float64))
        x = torch.as_tensor(self.values)
        return _expectiles(x, torch.as_tensor(self._p), t).numpy()
