"""Predicted spend stays defined when Gamma-Gamma's population mean does not exist (q ≤ 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from omnicrm.portrait.clv import GammaGammaModel
from omnicrm.portrait.value import _expected_spend


def test_customers_without_repeat_purchases_get_the_mean_when_q_is_at_most_one() -> None:
    gg = GammaGammaModel()
    gg.params_ = {"p": 13.0, "q": 0.7, "v": 13.0}
    x = np.array([0.0, 0.0, 2.0, 5.0])
    m = np.array([0.0, 0.0, 300.0, 500.0])
    info: dict[str, Any] = {}
    spend = _expected_spend(gg, x, m, info)
    assert np.all(np.isfinite(spend)) and np.all(spend > 0)
    assert spend[0] == spend[1] == 400.0 and "2 customers" in info["gamma_gamma_note"]
    assert spend[2] == gg.expected_average_value(x[2:3], m[2:3])[0]


def test_defined_model_values_are_used_as_they_are() -> None:
    gg = GammaGammaModel()
    gg.params_ = {"p": 6.25, "q": 3.74, "v": 15.44}
    x, m = np.array([0.0, 3.0]), np.array([0.0, 40.0])
    info: dict[str, Any] = {}
    assert np.allclose(_expected_spend(gg, x, m, info), gg.expected_average_value(x, m)) and not info
