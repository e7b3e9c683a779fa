"""Figures of the dopamine-population study (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from distrl_agents.neuro.analysis import PopulationAnalysis

__all__ = ["plot_correlation", "plot_decoding", "plot_responses"]


def plot_responses(
    magnitudes: np.ndarray, responses: np.ndarray, reversal: np.ndarray, path: Path, title: str
) -> None:
    """Mean response per cell (cells sorted by reversal point), dots coloured by reward magnitude."""
    order = np.argsort(reversal)
    mean = responses.mean(-1)[order]  # [C, R]
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for j, mag in enumerate(magnitudes):
        ax.scatter(
            np.arange(mean.shape[0]),
            mean[:, j],
            s=12,
            color=cmap(j / (len(magnitudes) - 1)),
            label=f"{mag:g} µl",
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("cell (sorted by reversal point)")
    ax.set_ylabel("mean RPE response (a.u.)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4, loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_correlation(results: dict[str, PopulationAnalysis], path: Path) -> None:
    """Reversal point vs estimated asymmetry per cell, one panel per model, with the correlation."""
    fig, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 3.6), dpi=110, sharey=True
    )
    for ax, (name, res) in zip(np.atleast_1d(axes), results.items()):
        ax.scatter(
            res.tau_hat, res.reversal, s=14, color="tab:blue" if "distrib" in name else "tab:gray"
        )
        c = res.corr
        ax.set_title(
            f"{name}\nPearson r={c['pearson_r']:.2f} (p={c['pearson_p']:.1e}), n={c['n']}",
            fontsize=9,
        )
        ax.set_xlabel("estimated asymmetry  α+/(α+ + α-)")
        ax.set_xlim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("reversal point (µl)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_decoding(
    decoded: dict[str, np.ndarray], magnitudes: np.ndarray, probs: np.ndarray, path: Path
) -> None:
    """Kernel density of decoded samples against the true reward probabilities."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=110)
    grid = np.linspace(-2, 25, 400)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for (name, z), col in zip(decoded.items(), colours):
        kde = stats.gaussian_kde(z, bw_method=0.2)
        ax.plot(grid, kde(grid), color=col, label=f"decoded: {name}")
    ax2 = ax.twinx()
    ax2.vlines(magnitudes, 0, probs, color="k", lw=2, label="true P(reward)")
    ax2.set_ylim(0, max(probs) * 2.2)
    ax2.set_ylabel("true probability")
    ax.set_xlabel("reward (µl)")
    ax.set_ylabel("decoded density")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
