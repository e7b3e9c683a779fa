"""A population of distributional-TD dopamine cells (Dabney et al. 2020, Nature).

Each cell ``i`` keeps a value ``V_i`` of the (single-state) task and learns from the same reward
stream with its own rates for positive and negative reward-prediction errors (paper, Fig. 1 and
Methods "distributional TD"):

    delta_i = r - V_i;   V_i += alpha+_i delta_i  if delta_i > 0  else  alpha-_i delta_i.

The fixed point solves ``alpha+ E[(r - V)_+] = alpha- E[(V - r)_+]``, i.e. ``V_i`` is the
``tau_i``-expectile of the reward distribution with ``tau_i = alpha+_i / (alpha+_i + alpha-_i)``.
Classical TD (the paper's control) is the same model with ``alpha+ = alpha-``: every cell
converges to the mean, and any spread in the measured reversal points is noise.

Simulated responses: the RPE response of cell ``i`` to reward ``r`` is the asymmetrically scaled
prediction error plus noise (the mechanism the paper proposes):

    response = gain_i * 2 * (tau_i delta_+ - (1 - tau_i) delta_-) + noise,    delta = r - V_i,

so the slope above the reversal point ``V_i`` is ``2 gain tau`` and below it ``2 gain (1 - tau)``
(``asymmetric_scaling=False`` uses slope ``gain`` on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distrl_agents.neuro.task import VariableMagnitudeTask

__all__ = ["CellPopulation", "learn_values", "simulate_responses"]


@dataclass(frozen=True)
class CellPopulation:
    """Per-cell learning rates ``alpha_pos``/``alpha_neg`` ``[C]`` and response gains ``[C]``."""

    alpha_pos: np.ndarray
    alpha_neg: np.ndarray
    gain: np.ndarray

    @property
    def taus(self) -> np.ndarray:
        """Asymmetry ``tau = alpha+ / (alpha+ + alpha-)`` per cell (paper, Fig. 1)."""
        return self.alpha_pos / (self.alpha_pos + self.alpha_neg)

    @property
    def num_cells(self) -> int:
        return int(self.alpha_pos.size)

    @classmethod
    def distributional(
        cls,
        num_cells: int,
        rng: np.random.Generator,
        *,
        rate: float = 0.02,
        tau_range: tuple[float, float] = (0.05, 0.95),
        gain_sd: float = 0.3,
    ) -> CellPopulation:
        """Cells with asymmetries ``tau ~ U(tau_range)``: ``alpha+ = 2 rate tau``, ``alpha- = 2 rate (1-tau)``."""
        taus = rng.uniform(*tau_range, size=num_cells)
        gain = np.exp(gain_sd * rng.standard_normal(num_cells))
        return cls(alpha_pos=2 * rate * taus, alpha_neg=2 * rate * (1 - taus), gain=gain)

    @classmethod
    def classical(
        cls, num_cells: int, rng: np.random.Generator, *, rate: float = 0.02, gain_sd: float = 0.3
    ) -> CellPopulation:
        """Classical-TD control: symmetric rates (``tau = 0.5``) with per-cell rate and gain."""
        rates = rate * np.exp(0.3 * rng.standard_normal(num_cells))
        gain = np.exp(gain_sd * rng.standard_normal(num_cells))
        return cls(alpha_pos=rates.copy(), alpha_neg=rates.copy(), gain=gain)


def learn_values(
    population: CellPopulation,
    task: VariableMagnitudeTask,
    rng: np.random.Generator,
    *,
    num_trials: int = 20_000,
    average_last: float = 0.5,
    init: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the distributional TD rule on one shared reward stream.

    Returns:
        ``(values [C], trajectory [num_trials, C])``: ``values`` is the average of ``V`` over the
        last ``average_last`` fraction of trials (Polyak averaging removes the constant-step-size
        jitter), ``trajectory`` the value of every cell after every trial.
    """
    rewards = task.sample(rng, num_trials)
    v = np.full(population.num_cells, float(init))
    traj = np.empty((num_trials, population.num_cells))
    for t, r in enumerate(rewards):
        delta = r - v
        # V += alpha+ delta if delta > 0 else alpha- delta (Dabney et al. 2020, Methods).
        v = v + np.where(delta > 0, population.alpha_pos, population.alpha_neg) * delta
        traj[t] = v
    start = int(num_trials * (1 - average_last))
    return traj[start:].mean(0), traj


def simulate_responses(
    population: CellPopulation,
    values: np.ndarray,
    magnitudes: np.ndarray,
    rng: np.random.Generator,
    *,
    trials_per_magnitude: int = 20,
    noise_sd: float = 1.0,
    asymmetric_scaling: bool = True,
) -> np.ndarray:
    """Responses ``[C, R, T]`` of every cell to every magnitude on ``T`` trials each.

    ``response = gain * 2 (tau delta_+ - (1 - tau) delta_-) + N(0, noise_sd^2)`` with
    ``delta = r - V_i`` (``asymmetric_scaling=False``: ``gain * delta + noise``).
    """
    mags = np.asarray(magnitudes, dtype=np.float64)
    delta = mags[None, :] - np.asarray(values)[:, None]  # [C, R]
    tau = population.taus[:, None]
    if asymmetric_scaling:
        scaled = 2 * np.where(delta > 0, tau, 1 - tau) * delta
    else:
        scaled = delta
    mean = population.gain[:, None] * scaled
    noise = noise_sd * rng.standard_normal((population.num_cells, mags.size, trials_per_magnitude))
    return mean[:, :, None] + noise
