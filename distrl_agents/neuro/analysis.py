"""The paper's analysis of dopamine responses, applied to simulated cells (Dabney et al. 2020).

Per cell: the response-vs-reward curve, its reversal point (reward at which the mean response
changes sign) and its asymmetry ``tau_hat = slope+ / (slope+ + slope-)`` from linear fits above and
below the reversal point. As in the paper, the two are estimated on *separate* random halves of
the trials (reversal point from one half, slopes from the other), so noise in one cannot create a
correlation with the other. Then the correlation across cells between asymmetry and reversal
point (positive for distributional TD), and decoding of the reward distribution from the
population by expectile imputation (paper, Fig. 5 and Methods "decoding").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from distrl_agents.distribution import ReturnDistribution
from distrl_agents.expectiles import impute_samples

__all__ = [
    "PopulationAnalysis",
    "analyse_population",
    "asymmetries",
    "correlation",
    "decode_distribution",
    "decode_return_distribution",
    "reversal_points",
    "split_halves",
    "wasserstein1",
]


def split_halves(responses: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``[C, R, T]`` responses into two disjoint random halves of the trials (per cell)."""
    c, r, t = responses.shape
    if t < 2:
        raise ValueError("need at least two trials per magnitude to split into halves")
    order = np.argsort(rng.random((c, r, t)), axis=-1)
    shuffled = np.take_along_axis(responses, order, axis=-1)
    return shuffled[..., : t // 2], shuffled[..., t // 2 :]


def reversal_points(magnitudes: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Reward at which each cell's mean response changes sign, ``[C]``.

    The mean response per magnitude is computed; the reversal interval is the gap between adjacent
    magnitudes (or below the smallest / above the largest) that leaves the fewest magnitudes with a
    mean response of the wrong sign (negative above, positive below); inside it the reversal point
    is the zero of the linear interpolation of the two means. A reversal outside the tested range
    is clamped to the smallest / largest magnitude.
    """
    mags = np.asarray(magnitudes, dtype=np.float64)
    mean = responses.mean(-1)  # [C, R]
    c, r = mean.shape
    # errors[c, i]: wrong-signed magnitudes if the reversal lies after the first i magnitudes.
    neg_wrong = np.concatenate([np.zeros((c, 1)), np.cumsum(mean > 0, axis=1)], axis=1)
    pos_wrong = np.concatenate(
        [np.cumsum((mean < 0)[:, ::-1], axis=1)[:, ::-1], np.zeros((c, 1))], axis=1
    )
    best = np.argmin(neg_wrong + pos_wrong, axis=1)  # in 0..R
    out = np.empty(c)
    for i in range(c):
        b = best[i]
        if b == 0:
            out[i] = mags[0]
        elif b == r:
            out[i] = mags[-1]
        else:
            y0, y1 = mean[i, b - 1], mean[i, b]
            x0, x1 = mags[b - 1], mags[b]
            w = 0.5 if y1 == y0 else np.clip(-y0 / (y1 - y0), 0.0, 1.0)
            out[i] = x0 + w * (x1 - x0)
    return out


def _slope(x: np.ndarray, y: np.ndarray, anchor: float) -> float:
    """Least-squares slope; free intercept with >= 2 distinct x, else a line through (anchor, 0)."""
    if x.size == 0:
        return float("nan")
    if np.unique(x).size >= 2:
        return float(np.polyfit(x, y, 1)[0])
    dx = x - anchor
    den = float(dx @ dx)
    return float(dx @ y / den) if den > 0 else float("nan")


def asymmetries(
    magnitudes: np.ndarray, responses: np.ndarray, reversal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tau_hat, slope_pos, slope_neg)`` per cell, ``[C]`` each.

    Linear fits of single-trial responses against reward magnitude, separately for magnitudes
    above and below the cell's reversal point (free intercept when a side has >= 2 magnitudes,
    otherwise a line through (reversal, 0)). Slopes are clipped at 0 (a negative slope means no
    measurable scaling) and ``tau_hat = slope+ / (slope+ + slope-)`` (paper, Fig. 3); a side with
    no magnitude, or both slopes 0, gives ``tau_hat = nan``.
    """
    mags = np.asarray(magnitudes, dtype=np.float64)
    c, _, t = responses.shape
    s_pos, s_neg = np.empty(c), np.empty(c)
    for i in range(c):
        above, below = mags > reversal[i], mags < reversal[i]
        s_pos[i] = _slope(np.repeat(mags[above], t), responses[i, above].ravel(), reversal[i])
        s_neg[i] = _slope(np.repeat(mags[below], t), responses[i, below].ravel(), reversal[i])
    sp, sn = np.clip(s_pos, 0, None), np.clip(s_neg, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau_hat = sp / (sp + sn)  # tau = alpha+ / (alpha+ + alpha-)
    return tau_hat, s_pos, s_neg


def correlation(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (r, two-sided p) over the finite pairs."""
    ok = np.isfinite(x) & np.isfinite(y)
    pr = stats.pearsonr(x[ok], y[ok])
    sr = stats.spearmanr(x[ok], y[ok])
    return {
        "pearson_r": float(pr[0]),
        "pearson_p": float(pr[1]),
        "spearman_r": float(sr[0]),
        "spearman_p": float(sr[1]),
        "n": int(ok.sum()),
    }


@dataclass
class PopulationAnalysis:
    """Per-cell estimates ``[C]`` and the asymmetry / reversal-point correlation."""

    reversal: np.ndarray
    tau_hat: np.ndarray
    slope_pos: np.ndarray
    slope_neg: np.ndarray
    corr: dict[str, float]


def analyse_population(
    magnitudes: np.ndarray, responses: np.ndarray, rng: np.random.Generator
) -> PopulationAnalysis:
    """Reversal points from one half of the trials, asymmetries from the other, correlation."""
    half_a, half_b = split_halves(responses, rng)
    rev = reversal_points(magnitudes, half_a)
    tau_hat, sp, sn = asymmetries(magnitudes, half_b, rev)
    return PopulationAnalysis(rev, tau_hat, sp, sn, correlation(tau_hat, rev))


def decode_distribution(
    expectile_values: np.ndarray,
    taus: np.ndarray,
    *,
    num_samples: int | None = None,
    bounds: tuple[float, float] | None = None,
    tau_clip: tuple[float, float] = (0.02, 0.98),
    rearrange: bool = True,
) -> np.ndarray:
    """Decode a distribution from (expectile value, level) pairs by imputation, ``[M]`` sorted.

    Dabney et al. 2020 (Methods, decoding): reversal points are read as expectile values and
    asymmetries as their levels; samples whose expectiles match are found by minimising the
    squared first-order-condition residuals (``impute_samples``, both starts, the better kept).
    Non-finite pairs are dropped, levels clipped to ``tau_clip``. With ``rearrange`` the values
    and the levels are sorted independently before pairing (expectiles increase with the level;
    noisy estimates need not, and crossing pairs ask for an impossible distribution).
    """
    e = np.asarray(expectile_values, dtype=np.float64)
    t = np.asarray(taus, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(t)
    e, t = e[ok], np.clip(t[ok], *tau_clip)
    if e.size == 0:
        raise ValueError("no finite (expectile value, level) pairs to decode")
    if rearrange:
        e, t = np.sort(e), np.sort(t)
    z = impute_samples(
        torch.as_tensor(e), torch.as_tensor(t), num_samples, bounds=bounds, init="best"
    )
    assert isinstance(z, torch.Tensor)
    return z.numpy()


def decode_return_distribution(
    dist: ReturnDistribution,
    action: int,
    *,
    kind: str = "expectile",
    batch_index: int = 0,
    num_samples: int | None = None,
) -> np.ndarray:
    """Decode an agent's predicted return distribution for one state and action, ``[M]`` sorted.

    ``dist.values[batch_index, action]`` are ``N`` statistics at levels ``dist.taus[batch_index]``:
    with ``kind="expectile"`` (ER-DQN / EDRL heads) they are expectiles and the samples come from
    the same imputation as the neural decoding above; with ``kind="quantile"`` (QR-DQN / IQN / FQF)
    the quantile values already are samples of the distribution (weighted by ``dist.probs``) and
    are returned sorted, resampled to ``num_samples`` equal-weight points when that is given.
    """
    if kind not in ("expectile", "quantile"):
        raise ValueError(f"kind must be 'expectile' or 'quantile'; got {kind!r}")
    if not 0 <= action < dist.num_actions:
        raise ValueError(f"action {action} out of range for {dist.num_actions} actions")
    values = dist.values[batch_index, action].detach().double().cpu()
    if kind == "expectile":
        if dist.taus is None:
            raise ValueError("expectile decoding needs dist.taus (the expectile levels)")
        taus = dist.taus[batch_index].detach().double().cpu()
        return decode_distribution(
            values.numpy(), taus.numpy(), num_samples=num_samples, tau_clip=(1e-6, 1 - 1e-6)
        )
    order = torch.argsort(values)
    v = values[order].numpy()
    if num_samples is None:
        return v
    p = dist.probs[batch_index, action].detach().double().cpu()[order].numpy()
    cdf = np.cumsum(p) / p.sum()
    levels = (np.arange(num_samples) + 0.5) / num_samples
    return v[np.minimum(np.searchsorted(cdf, levels), v.size - 1)]


def wasserstein1(samples: np.ndarray, values: np.ndarray, probs: np.ndarray | None = None) -> float:
    """1-Wasserstein distance between equal-weight ``samples`` and a discrete distribution."""
    return float(stats.wasserstein_distance(samples, values, None, probs))
