"""Dopamine-population model of Dabney et al. 2020 (Nature): distributional TD in simulated cells."""

from __future__ import annotations

from distrl_agents.neuro.analysis import (
    PopulationAnalysis,
    analyse_population,
    asymmetries,
    correlation,
    decode_distribution,
    decode_return_distribution,
    reversal_points,
    split_halves,
    wasserstein1,
)
from distrl_agents.neuro.population import CellPopulation, learn_values, simulate_responses
from distrl_agents.neuro.study import StudyConfig, StudyResult, run_study
from distrl_agents.neuro.task import REWARD_MAGNITUDES, VariableMagnitudeTask

__all__ = [
    "REWARD_MAGNITUDES",
    "CellPopulation",
    "PopulationAnalysis",
    "StudyConfig",
    "StudyResult",
    "VariableMagnitudeTask",
    "analyse_population",
    "asymmetries",
    "correlation",
    "decode_distribution",
    "decode_return_distribution",
    "learn_values",
    "reversal_points",
    "run_study",
    "simulate_responses",
    "split_halves",
    "wasserstein1",
]
