"""Metric writers (TensorBoard) and their fixed tag vocabulary."""

from __future__ import annotations

from distrl_agents.monitoring.writer import MetricWriter

__all__ = ["MetricWriter"]
