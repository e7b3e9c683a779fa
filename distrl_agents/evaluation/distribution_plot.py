"""Pictures of predicted return distributions, the same for every agent."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distrl_agents.distribution import ReturnDistribution


def distribution_figure(
    dist: ReturnDistribution,
    index: int = 0,
    *,
    frame: np.ndarray | None = None,
    action_names: Sequence[str] | None = None,
    title: str | None = None,
):
    """A matplotlib figure: the state's frame (optional) and, per action, the predicted return
    distribution as a cumulative distribution function (atoms sorted by value, weights summed),
    with the expected return marked. Works for C51 supports, quantiles, expectiles and DQN's point
    estimate alike, because it only reads ``values`` and ``probs``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = dist.values[index].detach().float().cpu().numpy()  # [A, N]
    probs = dist.probs[index].detach().float().cpu().numpy()  # [A, N]
    q = (values * probs).sum(-1)
    num_actions = values.shape[0]
    names = list(action_names) if action_names is not None else [str(a) for a in range(num_actions)]
    ncols = 2 if frame is not None else 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(4 * ncols + 2, 3.6), gridspec_kw={"width_ratios": [1, 2][-ncols:]}
    )
    axes = np.atleast_1d(axes)
    if frame is not None:
        axes[0].imshow(frame, cmap="gray", vmin=0, vmax=255)
        axes[0].set_axis_off()
        axes[0].set_title("state")
    ax = axes[-1]
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(num_actions, 2)))
    best = int(np.argmax(q))
    for a in range(num_actions):
        order = np.argsort(values[a], kind="stable")
        v, cdf = values[a][order], np.cumsum(probs[a][order])
        v = np.concatenate([[v[0]], v])
        cdf = np.concatenate([[0.0], cdf])
        label = f"{names[a]} (Q={q[a]:.2f})" + (" *" if a == best else "")
        ax.step(v, cdf, where="post", color=colors[a], lw=2.0 if a == best else 1.0, label=label)
        ax.axvline(q[a], color=colors[a], ls=":", lw=0.8)
    ax.set_xlabel("return")
    ax.set_ylabel("P(return <= x)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=6, loc="lower right", ncol=2 if num_actions > 9 else 1)
    ax.set_title(title or "predicted return distribution per action")
    fig.tight_layout()
    return fig
