"""Standardised effect sizes and verdicts against the minimal clinically important difference.

For an adjusted mean difference :math:`\\hat\\delta` (intervention − control) with
confidence interval :math:`(L, U)`, and :math:`s_0` the standard deviation of the outcome at
baseline over all randomised patients with a baseline value (both arms pooled),

.. math:: d = \\hat\\delta / s_0, \\qquad (L / s_0,\\; U / s_0).

:math:`s_0` is treated as known, as is usual for a reference SD that is not estimated from the
analysis model. The MCID :math:`\\Delta > 0` is given on the raw scale, or on the standardised
scale and converted with :math:`\\Delta_{raw} = \\Delta_{std} s_0`. With :math:`b = +1` when
higher scores are better and :math:`-1` otherwise, the interval in the direction of benefit is
:math:`(L_b, U_b) = \\mathrm{sort}(bL, bU)` and the verdict is

- ``important benefit shown`` when :math:`L_b > \\Delta` (wholly beyond +MCID),
- ``important harm shown`` when :math:`U_b < -\\Delta`,
- ``important effect ruled out`` when :math:`-\\Delta < L_b` and :math:`U_b < \\Delta`,
- ``inconclusive`` otherwise (the interval crosses an MCID boundary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trialstats.contract import MCID_VERDICTS as VERDICTS


def baseline_sd(baseline: pd.Series) -> float:
    """SD (n − 1 denominator) of the observed baseline values, all randomised patients pooled."""
    return float(baseline.dropna().std(ddof=1))


def mcid_raw(mcid: dict | None, sd_baseline: float) -> float:
    """The MCID on the outcome's own scale (NaN when no MCID is configured)."""
    if mcid is None:
        return float("nan")
    if mcid["scale"] == "standardised":
        return float(mcid["value"]) * sd_baseline
    return float(mcid["value"])


def mcid_verdict(ci_low: float, ci_high: float, mcid: float, higher_is_better: bool) -> str:
    """Classify a confidence interval for the difference against ±MCID (see module notes).

    Returns ``""`` when the MCID or the interval is missing.
    """
    if not np.isfinite([ci_low, ci_high, mcid]).all():
        return ""
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * ci_low, sign * ci_high))
    if low > mcid:
        return VERDICTS[0]
    if high < -mcid:
        return VERDICTS[1]
    if -mcid < low and high < mcid:
        return VERDICTS[2]
    return VERDICTS[3]
