r"""A vectorised safeguarded Newton root finder for increasing functions of a variance ratio.

The REML kernel (:mod:`trialstats.analysis.reml`) solves the score equation in the variance
ratio :math:`\gamma \ge 0`, and the ICC interval (:mod:`trialstats.analysis.icc`) the
profile-likelihood equation, for a whole batch of replicates at once; both are increasing
functions bracketed on :math:`[lo, hi]`. :func:`bracketed_newton` takes Newton steps for
:math:`x f(x)` in :math:`\log x` while they stay inside the bracket and falls back to false
position or bisection (on the log scale across wide brackets) otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bracketed_newton"]


def _interpolate(lo: np.ndarray, hi: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Point ``fraction`` of the way from lo to hi: on the log scale across wide positive
    brackets (the variance ratio spans decades), else linearly."""
    wide = (lo > 0) & (hi > 4.0 * lo)
    safe_lo, safe_hi = np.where(wide, lo, 1.0), np.where(wide, hi, 1.0)
    geometric = safe_lo * (safe_hi / safe_lo) ** fraction
    return np.where(wide, geometric, lo + fraction * (hi - lo))


def bracketed_newton(
    fun,
    lo: np.ndarray,
    hi: np.ndarray,
    value_lo: np.ndarray,
    value_hi: np.ndarray,
    *,
    xtol: float = 1e-10,
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Vectorised safeguarded Newton iteration for a root of an increasing function on x >= 0.

    Parameters
    ----------
    fun : callable
        ``fun(x, index) -> (value, derivative)`` for the replicates ``index`` (1-D int array) at
        points ``x`` (same length).
    lo, hi : ndarray, shape (B,)
        Brackets with ``value_lo < 0 <= value_hi``.
    value_lo, value_hi : ndarray, shape (B,)
        The function at ``lo`` and ``hi``.
    xtol : float
        Stop once the Newton correction, or the bracket, is below ``xtol`` relative to the
        iterate. A final Newton correction inside the bracket is applied; as Newton converges
        quadratically, one of relative size ``1e-10`` leaves an error at rounding level.
    max_iter : int
        Iteration limit; replicates still moving are reported as not converged.

    Returns
    -------
    root : ndarray, shape (B,)
    converged : ndarray of bool, shape (B,)

    Notes
    -----
    Newton steps, taken for :math:`x\,f(x)` on the scale of :math:`\log x` (the variance ratio
    spans decades, and this converges from further away than plain Newton), are kept while they
    stay strictly inside the current bracket and the step's slope is positive (the safeguard of
    Press et al., *Numerical Recipes*, ``rtsafe``). A rejected Newton step is replaced
    by a false-position step on the bracket, or by bisection if the previous step was already
    false position (both on the log scale across wide brackets), so the bracket keeps shrinking
    for any continuous function while a Newton iterate that overshoots a bracket end already
    close to the root costs one step, not a run of bisections.
    """
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    v_lo = np.array(value_lo, dtype=float)
    v_hi = np.array(value_hi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = _interpolate(lo, hi, np.clip(v_lo / (v_lo - v_hi), 0.05, 0.95))
    x = np.where(np.isfinite(x), x, _interpolate(lo, hi, 0.5))
    last_false_position = np.zeros(lo.shape, dtype=bool)
    converged = np.zeros(lo.shape, dtype=bool)
    active = np.arange(lo.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        xa, la, ha, vla, vha = x[active], lo[active], hi[active], v_lo[active], v_hi[active]
        value, slope = fun(xa, active)
        below = value < 0
        la, vla = np.where(below, xa, la), np.where(below, value, vla)
        ha, vha = np.where(below, ha, xa), np.where(below, vha, value)
        # Newton step for x * fun(x) in log x: log x -= x fun / (x fun + x^2 fun').
        log_slope = value + xa * slope
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = xa * np.exp(-value / log_slope)
            false_position = _interpolate(la, ha, vla / (vla - vha))
        inside = (log_slope > 0) & np.isfinite(newton) & (newton > la) & (newton < ha)
        fp_ok = ~last_false_position[active] & np.isfinite(false_position)
        fp_ok &= (false_position > la) & (false_position < ha)
        bisection = _interpolate(la, ha, 0.5)
        x_new = np.where(inside, newton, np.where(fp_ok, false_position, bisection))
        scale = np.maximum(np.abs(xa), np.finfo(float).tiny)
        # A Newton correction below xtol means xa is already the root to that precision.
        small_step = (log_slope > 0) & (np.abs(newton - xa) <= xtol * scale)
        x_new = np.where(small_step, np.where(inside, newton, xa), x_new)
        done = (value == 0) | small_step | (ha - la <= xtol * scale)
        x[active] = np.where(value == 0, xa, x_new)
        lo[active], hi[active], v_lo[active], v_hi[active] = la, ha, vla, vha
        last_false_position[active] = ~inside & fp_ok
        converged[active[done]] = True
        active = active[~done]
    return x, converged
