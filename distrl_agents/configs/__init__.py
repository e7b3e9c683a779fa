"""Hydra configs of distrl-train (a package so that they ship in the wheel)."""

from distrl_agents.training.sweep import register_job_dir_resolver

register_job_dir_resolver()  # configs/train.yaml's hydra.sweep.subdir uses it
