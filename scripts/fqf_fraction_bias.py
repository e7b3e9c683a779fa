"""Distribution recovery through bootstrapping, with FQF fractions that move.

On ``TwoStepBootstrap`` (a constant reward, then a long-tailed random reward one step later),
the first state's return distribution is reachable only through the bootstrapped target. Each
agent is trained on sampled transitions (batches of 64, target synced every 50 updates, the
learning rate divided by 10 for the last 40% of the updates) and its predicted distribution at
``s0`` is compared with the truth: 1-Wasserstein distance (% of the return range) and the error
of Q (% of the true mean). For FQF, ``frac move`` is ``max_i |tau_i - i/N|`` at ``s0``: how far
the proposed fractions moved from uniform.

    python scripts/fqf_fraction_bias.py [--seeds 0 1 2] [--steps 1500] [--kappa 0]

Rows: QR-DQN, IQN, C51 (references); FQF with the paper's fraction lr 2.5e-9 and with RMSProp
lr 1e-4 (the fractions barely move), with Adam lr 1e-2 (they move), and with fractions held far
from uniform (the weighting alone), each with the paper's equally weighted target samples and
with ``weighted_targets=True``. First the exact fixed points at the held fractions.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from distrl_agents.agents import make_agent
from distrl_agents.envs.toy import LONG_TAIL_VALUES, TwoStepBootstrap

MLP = {"torso": "mlp", "mlp_sizes": [64], "hidden": 64}


def configs(kappa: float) -> dict[str, tuple[str, dict[str, Any]]]:
    gamma_range = 0.9 * float(LONG_TAIL_VALUES.max())
    # The RMSProp rows use PyTorch's uncentred RMSprop (the figures in docs/agents.md were
    # measured with it); the agent's default is the authors' TF-style centred one.
    fqf = {
        "num_fractions": 32,
        "lr": 1e-3,
        "kappa": kappa,
        "fraction_optimizer": "rmsprop",
        "fraction_rmsprop_centered": False,
    }
    weighted = {"weighted_targets": True}
    adam = {"fraction_optimizer": "adam", "fraction_lr": 1e-2}
    skewed = {"fraction_lr": 1e-12, "skew": 2.0}
    return {
        "qrdqn": ("qrdqn", {"num_quantiles": 32, "lr": 1e-3, "kappa": kappa}),
        "iqn": (
            "iqn",
            {
                "num_tau_samples": 32,
                "num_tau_prime_samples": 32,
                "num_quantile_samples": 32,
                "lr": 1e-3,
                "kappa": kappa,
            },
        ),
        "c51": ("c51", {"num_atoms": 101, "v_min": 0.0, "v_max": 1.0 + gamma_range, "lr": 1e-3}),
        "fqf frac-lr 2.5e-9": ("fqf", {**fqf, "fraction_lr": 2.5e-9}),
        "fqf frac-lr 2.5e-9 weighted": ("fqf", {**fqf, "fraction_lr": 2.5e-9, **weighted}),
        "fqf frac-lr 1e-4": ("fqf", {**fqf, "fraction_lr": 1e-4}),
        "fqf frac-lr 1e-4 weighted": ("fqf", {**fqf, "fraction_lr": 1e-4, **weighted}),
        "fqf adam frac-lr 1e-2": ("fqf", {**fqf, **adam}),
        "fqf adam frac-lr 1e-2 weighted": ("fqf", {**fqf, **adam, **weighted}),
        # Fractions held far from uniform (proposal logits 2 * linspace(-1, 1), fraction lr
        # 1e-12): the target weighting alone.
        "fqf skewed fixed": ("fqf", {**fqf, **skewed}),
        "fqf skewed fixed weighted": ("fqf", {**fqf, **skewed, **weighted}),
    }


def wasserstein1(v1: np.ndarray, p1: np.ndarray, v2: np.ndarray, p2: np.ndarray) -> float:
    """W1 between two discrete distributions: integral of |F1(x) - F2(x)| dx."""
    xs = np.unique(np.concatenate([v1, v2]))
    f1 = np.array([p1[v1 <= x].sum() for x in xs])
    f2 = np.array([p2[v2 <= x].sum() for x in xs])
    return float((np.abs(f1 - f2)[:-1] * np.diff(xs)).sum())


def evaluate(agent: Any, env: TwoStepBootstrap, state: int = 0) -> dict[str, float]:
    """W1 (% of the range) and Q error (% of the mean) at ``state``; FQF: fraction movement."""
    agent.eval()
    obs = torch.from_numpy(env.observation(state)[None])
    kwargs: dict[str, Any] = {}
    if agent.name == "iqn":  # read IQN on a dense fixed tau grid
        kwargs["taus"] = (torch.arange(200, dtype=torch.float32) + 0.5) / 200
    with torch.no_grad():
        dist = agent.distribution(agent.online, obs, **kwargs)
    values = dist.values[0, 0].double().numpy()
    probs = dist.probs[0, 0].double().numpy()
    true_v, true_p = env.return_distribution(state)
    out = {
        "w1": 100 * wasserstein1(values, probs, true_v, true_p) / float(np.ptp(true_v)),
        "q": 100 * (float((values * probs).sum()) - env.true_q(state)) / env.true_q(state),
    }
    if agent.name == "fqf":
        n = values.shape[0]
        taus = np.concatenate([[0.0], np.cumsum(probs)])
        out["move"] = float(np.abs(taus - np.arange(n + 1) / n).max())
    agent.train()
    return out


def run(name: str, hparams: dict[str, Any], seed: int, steps: int) -> dict[str, float]:
    env = TwoStepBootstrap(seed=100 + seed)
    hparams = dict(hparams)
    skew = hparams.pop("skew", None)
    agent = make_agent(
        name, num_actions=1, obs_shape=env.obs_shape, network=MLP, seed=seed, **hparams
    )
    if skew is not None:  # non-uniform fractions from the start: proposal logits skewed
        proposal = agent.online.head.fraction_proposal.linear
        with torch.no_grad():
            proposal.bias.copy_(skew * torch.linspace(-1, 1, proposal.bias.shape[0]))
        agent.sync_target()
    env.train(agent, steps)
    return evaluate(agent, env)


def fixed_points(skew: float = 2.0, n: int = 32) -> dict[str, tuple[float, float]]:
    """Exact fixed points at held fractions (proposal logits ``skew * linspace(-1, 1, n)``), with
    ``s1`` known exactly: (W1 % of range, Q error %) of the best staircase at those fractions (what
    width-weighted targets converge to) and of the 1/N-weighted target's quantiles."""
    env = TwoStepBootstrap()
    logits = skew * np.linspace(-1, 1, n)
    widths = np.exp(logits) / np.exp(logits).sum()
    taus = np.concatenate([[0.0], np.cumsum(widths)])
    tau_hats = (taus[1:] + taus[:-1]) / 2

    def quantiles(values: np.ndarray, probs: np.ndarray, levels: np.ndarray) -> np.ndarray:
        order = np.argsort(values)
        cdf = np.cumsum(probs[order])
        idx = np.searchsorted(cdf, levels, side="right").clip(max=values.shape[0] - 1)
        return values[order][idx]

    true_v, true_p = env.return_distribution(0)
    s1_v, s1_p = env.return_distribution(1)
    target = env.first_reward + env.gamma * quantiles(s1_v, s1_p, tau_hats)  # at tau_hat_j
    out = {}
    for label, target_probs in (("widths", widths), ("1/N", np.full(n, 1.0 / n))):
        z = quantiles(target, target_probs, tau_hats)  # the quantile regression's fixed point
        w1 = 100 * wasserstein1(z, widths, true_v, true_p) / float(np.ptp(true_v))
        q = 100 * (float((z * widths).sum()) - env.true_q(0)) / env.true_q(0)
        out[label] = (w1, q)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--kappa", type=float, default=0.0, help="quantile Huber threshold")
    parser.add_argument("--only", nargs="*", default=None, help="row labels to run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for label, (w1, q) in fixed_points().items():
        print(
            f"exact fixed point, held skewed fractions, {label} targets: "
            f"W1 {w1:.2f}% of range, Q error {q:.2f}%"
        )
    print(
        f"TwoStepBootstrap (first reward 1, gamma 0.9, long-tailed second reward), state s0; "
        f"{args.steps} updates of 64, kappa {args.kappa}, seeds {args.seeds}; mean (min..max)"
    )
    print("| agent | W1 % of range | Q error % | frac move | s |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, hparams) in configs(args.kappa).items():
        if args.only and label not in args.only:
            continue
        start = time.perf_counter()
        results = [run(name, hparams, seed, args.steps) for seed in args.seeds]

        def cell(key: str, results: list[dict[str, float]] = results) -> str:
            if key not in results[0]:
                return "-"
            xs = [r[key] for r in results]
            return f"{np.mean(xs):.2f} ({min(xs):.2f}..{max(xs):.2f})"

        elapsed = time.perf_counter() - start
        print(
            f"| {label} | {cell('w1')} | {cell('q')} | {cell('move')} | {elapsed:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
