"""Reproduce the dopamine-population analysis of Dabney et al. 2020 (Nature) in simulation.

Usage: python scripts/reproduce_dabney2020.py [--out outputs/dabney2020] [--seed 0]

Writes responses_distributional.png, responses_classical.png, correlation.png, decoding.png and
summary.md into the output directory (seeded; well under 2 minutes on one core).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from distrl_agents.neuro.plots import plot_correlation, plot_decoding, plot_responses
from distrl_agents.neuro.study import StudyConfig, StudyResult, run_study


def _summary(res: StudyResult, seconds: float) -> str:
    cfg = res.config
    d, c = res.dist.corr, res.classical.corr
    task = cfg.task
    probs = ", ".join(f"{m:g}: {p:.3f}" for m, p in zip(task.values, task.p))
    return f"""# Dabney et al. 2020 reproduction (simulation)

Seed {cfg.seed}; {cfg.num_cells} cells per population; {cfg.num_learning_trials} learning trials;
{cfg.trials_per_magnitude} response trials per magnitude per cell; response noise sd {cfg.noise_sd};
run time {seconds:.1f} s.

Reward distribution (µl: probability): {probs} (mean {task.mean:.3f}).

Distributional-TD cells: max |V_i - expectile_tau_i| after learning = {res.expectile_error:.3f} µl.

## Asymmetry vs reversal point (asymmetry from one half of the trials, reversal point from the other)

| population | Pearson r | Pearson p | Spearman r | Spearman p | n |
|---|---|---|---|---|---|
| distributional TD | {d["pearson_r"]:.3f} | {d["pearson_p"]:.2e} | {d["spearman_r"]:.3f} | {d["spearman_p"]:.2e} | {d["n"]} |
| classical TD (control) | {c["pearson_r"]:.3f} | {c["pearson_p"]:.2e} | {c["spearman_r"]:.3f} | {c["spearman_p"]:.2e} | {c["n"]} |

## Decoding (expectile imputation, {cfg.num_decoded_samples} samples, over the reward range)

| decoded from | 1-Wasserstein to the true distribution (µl) |
|---|---|
| estimated reversal points and asymmetries | {res.w1_decoded:.3f} |
| learned values and true asymmetries (oracle) | {res.w1_oracle:.3f} |
| a point mass at the mean (all classical TD can represent) | {res.w1_mean_only:.3f} |
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/dabney2020"), help="output directory"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole study")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    res = run_study(StudyConfig(seed=args.seed))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    mags = res.config.task.values
    plot_responses(
        mags,
        res.dist_responses,
        res.dist.reversal,
        out / "responses_distributional.png",
        "Distributional TD cells",
    )
    plot_responses(
        mags,
        res.classical_responses,
        res.classical.reversal,
        out / "responses_classical.png",
        "Classical TD cells (control)",
    )
    plot_correlation(
        {"distributional TD": res.dist, "classical TD": res.classical}, out / "correlation.png"
    )
    plot_decoding(
        {"from responses": res.decoded, "oracle (learned values)": res.decoded_oracle},
        mags,
        res.config.task.p,
        out / "decoding.png",
    )
    seconds = time.perf_counter() - start
    (out / "summary.md").write_text(_summary(res, seconds))
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
