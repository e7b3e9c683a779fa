"""Evaluation: human-normalized scores, greedy evaluation, aggregate statistics and reports."""

from __future__ import annotations

from distrl_agents.evaluation.aggregates import (
    METRIC_NAMES,
    METRICS,
    aggregate_metrics,
    aggregate_metrics_with_ci,
    bootstrap_distribution,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)
from distrl_agents.evaluation.benchmarks import benchmark_coverage
from distrl_agents.evaluation.evaluator import EvalResult, evaluate
from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score
from distrl_agents.evaluation.records import (
    FINAL_FILE,
    RECORD_FIELDS,
    RESULTS_FILE,
    ReportError,
    append_result,
    evaluation_record,
    find_run_dirs,
    load_run,
    load_runs,
    write_final_result,
)
from distrl_agents.evaluation.report import build_report

__all__ = [
    "FINAL_FILE",
    "METRICS",
    "METRIC_NAMES",
    "RECORD_FIELDS",
    "RESULTS_FILE",
    "EvalResult",
    "ReportError",
    "aggregate_metrics",
    "aggregate_metrics_with_ci",
    "append_result",
    "benchmark_coverage",
    "bootstrap_distribution",
    "build_report",
    "evaluate",
    "evaluation_record",
    "find_run_dirs",
    "has_reference_scores",
    "human_normalized_score",
    "iqm",
    "load_run",
    "load_runs",
    "mean",
    "median",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
    "write_final_result",
]
