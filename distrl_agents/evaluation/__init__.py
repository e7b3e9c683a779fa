"""Evaluation: human-normalized scores, aggregate statistics and reports."""

from __future__ import annotations

from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score

__all__ = ["has_reference_scores", "human_normalized_score"]
