"""The whole simulated study (Dabney et al. 2020): learn, respond, analyse, decode."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distrl_agents.neuro.analysis import (
    PopulationAnalysis,
    analyse_population,
    decode_distribution,
    wasserstein1,
)
from distrl_agents.neuro.population import CellPopulation, learn_values, simulate_responses
from distrl_agents.neuro.task import VariableMagnitudeTask

__all__ = ["StudyConfig", "StudyResult", "run_study"]


@dataclass(frozen=True)
class StudyConfig:
    """Every knob of the simulated study (defaults: the documented reproduction in docs/neuro.md)."""

    seed: int = 0
    num_cells: int = 40
    num_learning_trials: int = 20_000
    learning_rate: float = 0.02
    tau_range: tuple[float, float] = (0.05, 0.95)
    trials_per_magnitude: int = 20
    noise_sd: float = 1.0
    num_decoded_samples: int = 100
    task: VariableMagnitudeTask = field(default_factory=VariableMagnitudeTask)


@dataclass
class StudyResult:
    """Values, responses and analyses of both populations, decoded samples and their W1."""

    config: StudyConfig
    dist_pop: CellPopulation
    dist_values: np.ndarray
    dist_responses: np.ndarray
    dist: PopulationAnalysis
    classical_pop: CellPopulation
    classical_values: np.ndarray
    classical_responses: np.ndarray
    classical: PopulationAnalysis
    decoded: np.ndarray  # from the estimated reversal points and asymmetries
    decoded_oracle: np.ndarray  # from the cells' learned values and true asymmetries
    w1_decoded: float
    w1_oracle: float
    w1_mean_only: float  # a point mass at the mean: what classical TD can represent
    expectile_error: float  # max |V_i - tau_i-expectile| over distributional cells


def run_study(config: StudyConfig | None = None) -> StudyResult:
    cfg = config or StudyConfig()
    task = cfg.task
    rng = np.random.default_rng(cfg.seed)
    mags = task.values
    bounds = (float(mags.min()), float(mags.max()))  # decode over the task's reward range

    pop = CellPopulation.distributional(
        cfg.num_cells, rng, rate=cfg.learning_rate, tau_range=cfg.tau_range
    )
    v, _ = learn_values(pop, task, rng, num_trials=cfg.num_learning_trials)
    resp = simulate_responses(
        pop, v, mags, rng, trials_per_magnitude=cfg.trials_per_magnitude, noise_sd=cfg.noise_sd
    )
    dist = analyse_population(mags, resp, rng)

    cpop = CellPopulation.classical(cfg.num_cells, rng, rate=cfg.learning_rate)
    cv, _ = learn_values(cpop, task, rng, num_trials=cfg.num_learning_trials)
    cresp = simulate_responses(
        cpop, cv, mags, rng, trials_per_magnitude=cfg.trials_per_magnitude, noise_sd=cfg.noise_sd
    )
    classical = analyse_population(mags, cresp, rng)

    m = cfg.num_decoded_samples
    decoded = decode_distribution(dist.reversal, dist.tau_hat, num_samples=m, bounds=bounds)
    oracle = decode_distribution(v, pop.taus, num_samples=m, bounds=bounds)
    return StudyResult(
        config=cfg,
        dist_pop=pop,
        dist_values=v,
        dist_responses=resp,
        dist=dist,
        classical_pop=cpop,
        classical_values=cv,
        classical_responses=cresp,
        classical=classical,
        decoded=decoded,
        decoded_oracle=oracle,
        w1_decoded=wasserstein1(decoded, mags, task.p),
        w1_oracle=wasserstein1(oracle, mags, task.p),
        w1_mean_only=wasserstein1(np.array([task.mean]), mags, task.p),
        expectile_error=float(np.abs(v - task.expectiles(pop.taus)).max()),
    )
