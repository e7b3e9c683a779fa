"""Hydra configs of distrl-train (a package so that they ship in the wheel)."""
