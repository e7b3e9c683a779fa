"""Expectiles: levels, the first-order condition, exact expectiles and sample imputation.

The tau-expectile ``e_tau`` of a distribution ``X`` (Newey & Powell 1987) minimises the
asymmetric squared loss ``E[|tau - 1{X < e}| (X - e)^2]``; equivalently it is the root of the
first-order condition (FOC)

    tau * E[(X - e)_+] = (1 - tau) * E[(e - X)_+],                                   (FOC)

which is strictly increasing in ``e`` for ``tau`` in (0, 1), so the root is unique. ``tau = 0.5``
is the mean. Expectile distributional RL (EDRL / ER-DQN, Rowland et al. 2019, "Statistics and
Samples in Distributional Reinforcement Learning") learns K expectiles per action
(``losses.expectile_loss``) and builds the Bellman target by *imputation*: find samples whose
expectiles are the predicted ones, push them through ``r + gamma z`` and regress on them. Dabney
et al. 2020 (Nature, Methods, "distributional decoding") use the same imputation to decode a
reward distribution from dopamine cells' reversal points (expectile values) and asymmetries
(expectile levels). The expectile agent, ``risk.py`` (risk measures of expectile agents) and
``neuro/`` (the decoding) all use this module.

Imputation (``impute_samples``) minimises over ``z_1..z_M`` (equal weights)

    L(z) = sum_k r_k(z)^2,   r_k(z) = mean_j |tau_k - 1{z_j < e_k}| (z_j - e_k)
         = mean_j [(2 tau_k - 1) (z_j - e_k)_+ + (1 - tau_k) (z_j - e_k)]

(``r_k`` is the FOC residual, zero iff ``e_k`` is the ``tau_k``-expectile of the samples).
``r`` is piecewise linear in ``z`` and ``L`` has kinks where a sample crosses an expectile (every
sample starts on one), which trap plain (Gauss-)Newton steps. So we solve a smoothed problem with
``(d)_+`` replaced by ``s softplus(d / s)`` and shrink ``s`` by ``smoothing_decay`` every
``decay_every`` iterations down to the exact problem (``s = 0`` once below ``1e-7``), each stage
a batched Levenberg-Marquardt (damped Gauss-Newton) iteration with Jacobian
``J_kj = [(1 - tau_k) + (2 tau_k - 1) sigmoid((z_j - e_k) / s)] / M``, one damping per row, steps
accepted only when they lower ``L``. It runs in float64 on the input's device, values normalised
by their range (the FOC is affine-equivariant).

``L`` is not convex in ``z``: local Gauss-Newton from the expectile values themselves
(``init="expectiles"``, the default and the papers' optimiser start) can stall with samples
clumped in the wrong intervals. ``init="grid"`` first solves the *convex* version of the
problem: on a fixed grid of ``G = 256`` atoms spanning the expectile range widened by the range
on each side (or ``bounds``), the FOC residual is linear in the atom probabilities ``p``, so
``min_p ||A p||^2 + mu ||p||^2`` over the simplex (``A_kg`` the FOC term of atom ``g``, small
``mu`` picks the most spread-out solution) is solved by batched projected accelerated gradient
(FISTA); the ``M`` samples start at that distribution's quantiles ``(j + 1/2) / M`` and the
Levenberg-Marquardt stages polish them. ``init="best"`` runs both and keeps, per row, the
smaller final residual (twice the cost; used for decoding, where the batch is small).

Shapes: ``B`` batch, ``K`` expectile levels, ``M`` samples / target atoms, ``N`` atoms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "broadcast_levels",
    "expectile_foc_residual",
    "expectile_levels",
    "expectiles",
    "impute_samples",
]


def expectile_levels(num_expectiles: int, device: torch.device | str | None = None) -> Tensor:
    """Evenly spaced levels ``tau_k = k / (K + 1)``, ``k = 1..K``, ``[K]`` fp32.

    The interior points of the ``1 / (K + 1)`` grid: symmetric about 0.5, strictly inside (0, 1)
    (imputation needs that), and containing 0.5 exactly when ``K`` is odd.
    """
    k = torch.arange(1, num_expectiles + 1, dtype=torch.float32, device=device)
    return k / (num_expectiles + 1)


def broadcast_levels(
    taus: Tensor, batch: int, k: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Broadcast expectile levels ``[K]`` or ``[B, K]`` to ``[B, K]``."""
    taus = torch.as_tensor(taus, device=device).to(dtype)
    if taus.dim() == 1:
        taus = taus.unsqueeze(0).expand(batch, -1)
    if taus.shape != (batch, k):
        raise ValueError(
            f"taus must be [K] or [B, K] with B={batch}, K={k}; got {tuple(taus.shape)}"
        )
    return taus


def expectile_foc_residual(
    values: Tensor, samples: Tensor, taus: Tensor, weights: Tensor | None = None
) -> Tensor:
    """FOC residual ``r_k = E_w[|tau_k - 1{z < e_k}| (z - e_k)]``, ``[B, K]``.

    ``r_k = tau_k E[(z - e_k)_+] - (1 - tau_k) E[(e_k - z)_+]`` (FOC above); zero iff ``e_k`` is the
    ``tau_k``-expectile of the weighted samples. It is the objective the imputation of Rowland et
    al. 2019 (EDRL) and Dabney et al. 2020 (Methods) drives to zero.

    Args:
        values: ``[B, K]`` candidate expectile values ``e``.
        samples: ``[B, M]`` samples ``z``.
        taus: ``[K]`` or ``[B, K]``.
        weights: ``[B, M]`` probabilities (uniform ``1/M`` when ``None``).
    """
    batch, k = values.shape
    tau_BK1 = broadcast_levels(taus, batch, k, values.device, values.dtype).unsqueeze(-1)
    d_BKM = samples.unsqueeze(1) - values.unsqueeze(2)  # z_j - e_k
    w_BKM = torch.where(d_BKM < 0, 1.0 - tau_BK1, tau_BK1)
    if weights is None:
        return (w_BKM * d_BKM).mean(-1)
    return (w_BKM * d_BKM * weights.to(values.dtype).unsqueeze(1)).sum(-1)


def expectiles(samples: Tensor, weights: Tensor | None, taus: Tensor) -> Tensor:
    """Exact expectiles of discrete distributions, ``[..., K]`` (batched, no iteration).

    The FOC ``f(e) = (1 - tau) E[(e - X)_+] - tau E[(X - e)_+]`` is piecewise linear in ``e`` with
    breakpoints at the atoms. With atoms sorted, ``F_i = sum_{j<=i} p_j``, ``S_i = sum_{j<=i} p_j x_j``
    and mean ``m``, on the segment after ``i`` atoms ``f(e) = e [(1-tau) F_i + tau (1-F_i)]
    - (1-tau) S_i - tau (m - S_i)``, so the root is

        e = [(1 - tau) S_i + tau (m - S_i)] / [(1 - tau) F_i + tau (1 - F_i)],

    where ``i`` is the number of atoms at which ``f < 0``. ``tau = 0`` / ``1`` give the smallest /
    largest atom of positive weight. Computed in float64; returned in the samples' float dtype.

    Args:
        samples: ``[..., N]`` atom locations.
        weights: ``[..., N]`` probabilities summing to one (``None``: uniform).
        taus: ``[K]`` or ``[..., K]`` levels in [0, 1].
    """
    samples = torch.as_tensor(samples)
    out_dtype = samples.dtype if samples.is_floating_point() else torch.float32
    x = samples.double()
    if weights is None:
        p = torch.full_like(x, 1.0 / x.shape[-1])
    else:
        p = torch.as_tensor(weights, device=x.device).double().expand_as(x)
    taus = torch.as_tensor(taus, device=x.device).double()
    if ((taus < 0) | (taus > 1)).any():
        raise ValueError("expectile levels taus must lie in [0, 1]")
    if (p < 0).any():
        raise ValueError("weights must be non-negative")
    p = p / p.sum(-1, keepdim=True)
    tau = taus.expand(*x.shape[:-1], taus.shape[-1])  # [..., K]
    x_sorted, order = torch.sort(x, dim=-1)
    p_sorted = torch.gather(p, -1, order)
    e = _segment_roots(x_sorted, p_sorted, tau)
    positive = p_sorted > 0
    big = torch.finfo(torch.float64).max
    lo = torch.where(positive, x_sorted, big).amin(-1, keepdim=True)
    hi = torch.where(positive, x_sorted, -big).amax(-1, keepdim=True)
    e = torch.minimum(torch.maximum(e, lo), hi)
    e = torch.where(tau <= 0, lo.expand_as(e), e)
    e = torch.where(tau >= 1, hi.expand_as(e), e)
    return e.to(out_dtype)


def _segment_roots(x_sorted: Tensor, p_sorted: Tensor, tau: Tensor) -> Tensor:
    """The FOC root on the linear segment that holds it (``expectiles``), ``[..., K]``."""
    cdf = torch.cumsum(p_sorted, -1)  # F_i, [..., N]
    partial = torch.cumsum(p_sorted * x_sorted, -1)  # S_i
    mean = partial[..., -1:]  # m
    # f at every atom, [..., K, N] (FOC evaluated at e = x_i).
    t = tau.unsqueeze(-1)
    xi, fi, si, m = (
        x_sorted.unsqueeze(-2),
        cdf.unsqueeze(-2),
        partial.unsqueeze(-2),
        mean.unsqueeze(-2),
    )
    f_at_atoms = (1 - t) * (xi * fi - si) - t * ((m - si) - xi * (1 - fi))
    count = (f_at_atoms < 0).sum(-1, keepdim=True)  # i = atoms strictly left of the root
    zeros = torch.zeros_like(cdf[..., :1])
    f_left = torch.cat([zeros, cdf], -1).unsqueeze(-2).expand(*tau.shape, -1)
    s_left = torch.cat([zeros, partial], -1).unsqueeze(-2).expand(*tau.shape, -1)
    fl = torch.gather(f_left, -1, count).squeeze(-1)
    sl = torch.gather(s_left, -1, count).squeeze(-1)
    num = (1 - tau) * sl + tau * (mean - sl)
    den = (1 - tau) * fl + tau * (1 - fl)
    return num / den.clamp_min(1e-300)


@dataclass(frozen=True)
class _Schedule:
    """The Levenberg-Marquardt iterations of ``impute_samples`` (see its arguments)."""

    max_iters: int
    smoothing: float
    smoothing_decay: float
    decay_every: int
    tol: float


def impute_samples(
    expectile_values: Tensor,
    taus: Tensor,
    num_samples: int | None = None,
    *,
    max_iters: int = 300,
    smoothing: float = 0.02,
    smoothing_decay: float = 0.5,
    decay_every: int = 8,
    tol: float = 1e-22,
    bounds: tuple[float, float] | None = None,
    return_residual: bool = False,
    init: str = "expectiles",
) -> Tensor | tuple[Tensor, Tensor]:
    """Samples whose expectiles at ``taus`` are ``expectile_values`` (batched, on their device).

    The imputation strategy of EDRL (Rowland et al. 2019) and the distributional decoding of
    Dabney et al. 2020 (Methods); the method is in the module docstring.

    Args:
        expectile_values: ``[B, K]`` or ``[K]`` expectiles.
        taus: ``[K]`` or ``[B, K]`` levels in (0, 1).
        num_samples: ``M`` (default ``K``).
        max_iters: LM iterations in all (each one batched ``M x M`` solve).
        smoothing: initial smoothing width ``s`` in units of the expectiles' range (0: exact only).
        smoothing_decay: factor applied to ``s`` every ``decay_every`` iterations.
        decay_every: iterations per smoothing stage.
        tol: a row stops once its exact ``L`` (normalised units) is below this.
        bounds: optional ``(low, high)`` box the samples are projected onto (e.g. the reward range).
        return_residual: also return ``[B]`` final ``max_k |r_k|`` in the input's units. The
            expectile error is at most ``|r_k| / min(tau_k, 1 - tau_k)``.
        init: ``"expectiles"`` (start at the values), ``"grid"`` (convex grid solve) or ``"best"``.

    Returns:
        ``[B, M]`` (or ``[M]``) samples sorted ascending, in the input's float dtype.
    """
    e_in = torch.as_tensor(expectile_values)
    squeeze = e_in.dim() == 1
    e = e_in.unsqueeze(0) if squeeze else e_in
    if e.dim() != 2:
        raise ValueError(f"expectile_values must be [K] or [B, K]; got {tuple(e_in.shape)}")
    out_dtype = e.dtype if e.is_floating_point() else torch.float32
    batch, k = e.shape
    m = k if num_samples is None else int(num_samples)
    if m < 1:
        raise ValueError(f"num_samples must be >= 1; got {num_samples}")
    tau = broadcast_levels(taus, batch, k, e.device, torch.float64)
    if ((tau <= 0) | (tau >= 1)).any():
        raise ValueError("imputation needs expectile levels strictly inside (0, 1)")
    schedule = _Schedule(max_iters, smoothing, smoothing_decay, decay_every, tol)
    if init == "best":  # both starts, keep the row-wise better result
        za, ra = _impute(e, tau, m, schedule, bounds, "expectiles", out_dtype)
        zb, rb = _impute(e, tau, m, schedule, bounds, "grid", out_dtype)
        z, res = torch.where((rb < ra).unsqueeze(-1), zb, za), torch.minimum(ra, rb)
    else:
        z, res = _impute(e, tau, m, schedule, bounds, init, out_dtype)
    if squeeze:
        z, res = z.squeeze(0), res.squeeze(0)
    return (z, res) if return_residual else z


def _impute(
    e: Tensor,
    tau: Tensor,
    m: int,
    schedule: _Schedule,
    bounds: tuple[float, float] | None,
    init: str,
    out_dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """One imputation from start ``init``: samples ``[B, M]`` and residual ``[B]``."""
    e = e.detach().double()
    # Normalise: z = centre + scale * y.
    centre = e.mean(-1, keepdim=True)
    scale = (e.max(-1, keepdim=True).values - e.min(-1, keepdim=True).values).clamp_min(1e-8)
    en = (e - centre) / scale
    lo = hi = None
    if bounds is not None:
        lo, hi = (bounds[0] - centre) / scale, (bounds[1] - centre) / scale

    def project(y_: Tensor) -> Tensor:
        if lo is None:
            return y_
        assert hi is not None  # lo and hi are both set from ``bounds``, or both None
        return torch.minimum(torch.maximum(y_, lo), hi)

    y = project(_start(en, tau, m, init, lo, hi))
    y, r = _levenberg_marquardt(y, en, tau, schedule, project)
    z = centre + scale * torch.sort(y, -1).values
    return z.to(out_dtype), (r.abs().amax(-1) * scale.squeeze(-1)).to(out_dtype)


def _start(
    en: Tensor, tau: Tensor, m: int, init: str, lo: Tensor | None, hi: Tensor | None
) -> Tensor:
    """The samples' starting point ``[B, M]`` (normalised units)."""
    if init == "grid":
        return _grid_init(en, tau, m, lo, hi)
    if init != "expectiles":
        raise ValueError(f"init must be 'expectiles', 'grid' or 'best'; got {init!r}")
    # The expectile values themselves (sorted by level), interpolated when M != K.
    tau_sorted, order = torch.sort(tau, -1)
    e_by_tau = torch.gather(en, -1, order)
    if m == en.shape[1]:
        return e_by_tau.clone()
    levels = (torch.arange(m, device=en.device, dtype=torch.float64) + 0.5) / m
    return _interp(levels.expand(en.shape[0], m), tau_sorted, e_by_tau)


def _smoothed_residual(
    y: Tensor, en: Tensor, tau: Tensor, s: float
) -> tuple[Tensor, Tensor, Tensor]:
    """FOC residuals ``r`` ``[B, K]`` of samples ``y`` ``[B, M]`` (smoothed when ``s > 0``),
    their Jacobian ``[B, K, M]`` and ``L = sum_k r_k^2`` ``[B]``."""
    t_BK1 = tau.unsqueeze(-1)
    d = y.unsqueeze(1) - en.unsqueeze(2)  # z_j - e_k, [B, K, M]
    if s > 0:
        d_plus, slope = s * F.softplus(d / s), torch.sigmoid(d / s)
    else:
        d_plus, slope = d.clamp_min(0.0), (d >= 0).double()
    # r_k = mean_j (2 tau - 1) (d)_+ + (1 - tau) d   (FOC residual, smoothed when s > 0)
    r = ((2 * t_BK1 - 1) * d_plus + (1 - t_BK1) * d).mean(-1)
    jac = ((1 - t_BK1) + (2 * t_BK1 - 1) * slope) / y.shape[-1]
    return r, jac, (r * r).sum(-1)


def _lm_step(r: Tensor, jac: Tensor, lam: Tensor, eye: Tensor) -> Tensor:
    """The damped Gauss-Newton step ``[B, M]`` for residuals ``r`` ``[B, K]``, ``J`` ``[B, K, M]``."""
    k, m = jac.shape[1], jac.shape[2]
    jt = jac.transpose(1, 2)
    if m <= k:
        hess = jt @ jac  # Gauss-Newton J^T J, [B, M, M], Marquardt-scaled damping
        grad = jt @ r.unsqueeze(-1)  # J^T r
        diag = torch.diag_embed(torch.diagonal(hess, 0, 1, 2))
        lhs = hess + lam[:, None, None] * (diag + 1e-9 * eye)
        return -torch.linalg.solve(lhs, grad).squeeze(-1)
    # More samples than statistics: the same Levenberg step in K-space,
    # (J^T J + c I)^{-1} J^T r = J^T (J J^T + c I)^{-1} r, a [B, K, K] solve.
    gram = jac @ jt
    c = lam * torch.diagonal(gram, 0, 1, 2).mean(-1) + 1e-12
    dual = torch.linalg.solve(gram + c[:, None, None] * eye, r.unsqueeze(-1))
    return -(jt @ dual).squeeze(-1)


def _levenberg_marquardt(
    y: Tensor, en: Tensor, tau: Tensor, schedule: _Schedule, project: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """Polish samples ``y`` ``[B, M]``: smoothed stages down to the exact problem; returns them
    and their exact FOC residuals ``[B, K]``."""
    batch, k, m = en.shape[0], en.shape[1], y.shape[1]
    eye = torch.eye(min(m, k), dtype=torch.float64, device=en.device)
    s = float(schedule.smoothing) if schedule.smoothing > 0 else 0.0
    r, jac, loss = _smoothed_residual(y, en, tau, s)
    lam = torch.full((batch,), 1e-3, dtype=torch.float64, device=en.device)
    for it in range(schedule.max_iters):
        active = loss > (schedule.tol if s == 0 else 0.0)
        if not bool(active.any()):
            if s == 0:
                break
        else:
            y_new = project(y + _lm_step(r, jac, lam, eye))
            r_new, jac_new, loss_new = _smoothed_residual(y_new, en, tau, s)
            accept = (loss_new < loss) & active
            y = torch.where(accept[:, None], y_new, y)
            r = torch.where(accept[:, None], r_new, r)
            jac = torch.where(accept[:, None, None], jac_new, jac)
            loss = torch.where(accept, loss_new, loss)
            lam = torch.where(accept, (lam * 0.3).clamp_min(1e-12), (lam * 10.0).clamp_max(1e12))
        if s > 0 and (it + 1) % schedule.decay_every == 0:
            s = s * schedule.smoothing_decay if s * schedule.smoothing_decay > 1e-7 else 0.0
            r, jac, loss = _smoothed_residual(y, en, tau, s)
            lam.fill_(1e-3)
    r, _, _ = _smoothed_residual(y, en, tau, 0.0)
    return y, r


def _grid_init(
    en: Tensor, tau: Tensor, m: int, lo: Tensor | None, hi: Tensor | None, grid_size: int = 256
) -> Tensor:
    """Convex start for imputation: FOC-consistent weights on a fixed grid, then ``M`` quantiles.

    ``r_k(p) = sum_g p_g phi_k(x_g)`` with ``phi_k(x) = |tau_k - 1{x < e_k}| (x - e_k)`` is linear in
    ``p``; minimise ``||A p||^2 + mu ||p||^2`` over the simplex by FISTA with simplex projection.
    """
    batch = en.shape[0]
    dev = en.device
    e_lo, e_hi = en.amin(-1, keepdim=True), en.amax(-1, keepdim=True)
    width = (e_hi - e_lo).clamp_min(1e-8)
    g_lo = e_lo - width if lo is None else lo.expand_as(e_lo)
    g_hi = e_hi + width if hi is None else hi.expand_as(e_hi)
    steps = torch.linspace(0.0, 1.0, grid_size, dtype=torch.float64, device=dev)
    x_BG = g_lo + (g_hi - g_lo) * steps  # [B, G]
    d_BKG = x_BG.unsqueeze(1) - en.unsqueeze(2)
    t = tau.unsqueeze(-1)
    a_BKG = torch.where(d_BKG < 0, 1 - t, t) * d_BKG  # FOC term of each grid atom
    mu = 1e-6
    lip = 2.0 * (torch.linalg.matrix_norm(a_BKG, ord=2) ** 2 + mu)  # [B]
    p = torch.full((batch, grid_size), 1.0 / grid_size, dtype=torch.float64, device=dev)
    v, t_k = p.clone(), 1.0
    for _ in range(300):
        grad = 2.0 * ((a_BKG.transpose(1, 2) @ (a_BKG @ v.unsqueeze(-1))).squeeze(-1) + mu * v)
        p_next = _project_simplex(v - grad / lip.unsqueeze(-1))
        t_next = (1.0 + (1.0 + 4.0 * t_k * t_k) ** 0.5) / 2.0
        v = p_next + ((t_k - 1.0) / t_next) * (p_next - p)
        p, t_k = p_next, t_next
    cdf = torch.cumsum(p, -1)
    levels = ((torch.arange(m, device=dev, dtype=torch.float64) + 0.5) / m).expand(batch, m)
    idx = torch.searchsorted(cdf.contiguous(), levels.contiguous()).clamp_max(grid_size - 1)
    return torch.gather(x_BG, -1, idx)


def _project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row onto the probability simplex (sort-based)."""
    u = torch.sort(v, -1, descending=True).values
    css = torch.cumsum(u, -1) - 1.0
    ind = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = (u - css / ind) > 0
    rho = cond.to(v.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = torch.gather(css, -1, rho) / (rho + 1).to(v.dtype)
    return (v - theta).clamp_min(0.0)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Batched linear interpolation ``[B, M]`` of ``fp`` at ``x`` (``xp`` sorted), flat outside."""
    if xp.shape[-1] == 1:
        return fp.expand_as(x).clone()
    idx = torch.searchsorted(xp.contiguous(), x.contiguous()).clamp(1, xp.shape[-1] - 1)
    x0, x1 = torch.gather(xp, -1, idx - 1), torch.gather(xp, -1, idx)
    f0, f1 = torch.gather(fp, -1, idx - 1), torch.gather(fp, -1, idx)
    w = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return f0 + w * (f1 - f0)
