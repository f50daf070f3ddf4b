"""Effect sizes and MCID verdicts: closed-form cases, both directions of benefit."""

import math

import pandas as pd
import pytest

from trialstats.analysis.effects import baseline_sd, mcid_raw, mcid_verdict


@pytest.mark.parametrize(
    ("low", "high", "higher_is_better", "expected"),
    [
        (3.0, 8.0, True, "important benefit shown"),
        (-8.0, -3.0, True, "important harm shown"),
        (-1.0, 1.5, True, "important effect ruled out"),
        (-1.0, 4.0, True, "inconclusive"),
        (-3.0, -1.0, True, "inconclusive"),
        # lower scores better (e.g. a symptom score): a negative difference is a benefit
        (-8.0, -3.0, False, "important benefit shown"),
        (3.0, 8.0, False, "important harm shown"),
        (-1.5, 1.0, False, "important effect ruled out"),
        # touching the boundary is not "wholly beyond" and not "wholly inside"
        (2.0, 5.0, True, "inconclusive"),
        (-2.0, 1.0, True, "inconclusive"),
    ],
)
def test_verdicts(low, high, higher_is_better, expected):
    assert mcid_verdict(low, high, 2.0, higher_is_better) == expected


def test_missing_mcid_or_interval_gives_no_verdict():
    assert mcid_verdict(-1.0, 1.0, float("nan"), True) == ""
    assert mcid_verdict(float("nan"), 1.0, 2.0, True) == ""


def test_mcid_scales():
    assert mcid_raw({"scale": "raw", "value": 0.074}, 0.25) == pytest.approx(0.074)
    assert mcid_raw({"scale": "standardised", "value": 0.2}, 15.0) == pytest.approx(3.0)
    assert math.isnan(mcid_raw(None, 15.0))


def test_baseline_sd_ignores_missing_and_uses_n_minus_1():
    assert baseline_sd(pd.Series([1.0, 2.0, None, 3.0, 4.0])) == pytest.approx(1.2909944487358056)
