"""Gamma-Gamma spend model: Fader, Hardie & Lee (2005), "RFM and CLV: Using iso-value curves for customer
base analysis", Journal of Marketing Research 42(4); likelihood as in Fader & Hardie (2013), "The Gamma-Gamma
model of monetary value" (note 025).

Transaction values z ~ Gamma(p, ν) with ν ~ Gamma(q, γ) across customers (γ is ``v`` here, as in lifetimes).
For a repeat customer with x transactions of mean z̄ the density of z̄ is (note 025, eq. 3)

    f(z̄ | p, q, γ, x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q z̄^(px−1) x^(px) / (γ + x z̄)^(px+q),

and E[Z | x, z̄] = (q−1)/(px+q−1) · pγ/(q−1) + px/(px+q−1) · z̄ (FHL 2005 eq. 5). CLV discounts the
expected monthly purchases of a transaction model by (1 + discount_rate)^month, as lifetimes does.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln

from omnicrm.portrait.clv.bgnbd import FitError, fit_log_params, hessian, summary_frame
from omnicrm.portrait.clv.summary import columns, compress

__all__ = ["PERIODS_PER_MONTH", "GammaGammaModel", "PurchaseModel", "gamma_gamma_log_likelihood"]

Arr = NDArray[np.float64]
# periods per month of the transaction model's time unit (lifetimes: D 30, W 4.345)
PERIODS_PER_MONTH = {"days": 30.0, "weeks": 4.345, "months": 1.0}


class PurchaseModel(Protocol):
    """A transaction model that forecasts conditional expected purchases (e.g. :class:`BetaGeoModel`)."""

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Arr: ...


def gamma_gamma_log_likelihood(params: ArrayLike, x: Arr, m: Arr, *, gradient: bool = False) -> Any:
    """Per-customer log density of the mean spend m given x ≥ 1 (note 025 eq. 3); ``gradient``: d/d(p, q, v)."""
    p, q, v = np.asarray(params, dtype=np.float64)
    px = p * x
    log_xm_v = np.log(x * m + v)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x)
    ll = ll - (px + q) * log_xm_v
    if not gradient:
        return ll
    dpq = digamma(px + q)
    d_p = x * (dpq - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = dpq - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    return ll, np.vstack([d_p, d_q, d_v])


class GammaGammaModel:
    """Gamma-Gamma model of spend per transaction: ``fit(summary)`` on repeat customers, then expected values.

    ``penalizer`` adds ``penalizer * Σ params²`` to the mean negative log-likelihood, as lifetimes'
    ``GammaGammaFitter(penalizer_coef=...)`` does. Customers with frequency 0 are ignored in the fit.
    """

    param_names = ("p", "q", "v")

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.params_: dict[str, float] = {}
        self.log_likelihood_: float = float("nan")
        self._hessian: Arr | None = None

    def fit(
        self,
        data: Any,
        *,
        frequency: str = "frequency",
        monetary_value: str = "monetary_value",
        weights: ArrayLike | None = None,
    ) -> GammaGammaModel:
        """Fit (p, q, v) by maximum likelihood on the rows with frequency > 0 and monetary_value > 0."""
        x, m = columns(data, [frequency, monetary_value])
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
        keep = (x > 0) & (m > 0)
        if keep.sum() < 3:
            raise FitError("Gamma-Gamma needs repeat customers (frequency > 0 and monetary_value > 0); found < 3")
        (x, m), w = compress(x[keep], m[keep], weights=w[keep])

        def objective(params: Arr) -> tuple[float, Arr]:
            ll, grad = gamma_gamma_log_likelihood(params, x, m, gradient=True)
            return -float(w @ ll), -(grad @ w)

        params, _ = fit_log_params(objective, np.ones(3), float(w.sum()), self.penalizer)
        self.params_ = dict(zip(self.param_names, map(float, params), strict=True))
        self.log_likelihood_ = -objective(params)[0]
        self._hessian = hessian(objective, params)
        return self

    def _p(self) -> tuple[float, float, float]:
        if not self.params_:
            raise FitError("the model is not fitted yet; call fit(summary) first")
        return self.params_["p"], self.params_["q"], self.params_["v"]

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors from the Hessian of the log-likelihood at the MLE."""
        self._p()
        assert self._hessian is not None
        return summary_frame(self.param_names, np.array(list(self.params_.values())), self._hessian)

    def expected_average_value(self, frequency: ArrayLike, monetary_value: ArrayLike) -> Arr:
        """E[Z | x, z̄] = p(v + x z̄) / (px + q − 1) (FHL 2005 eq. 5); the population mean pv/(q−1) when x = 0."""
        p, q, v = self._p()
        x, m = np.asarray(frequency, dtype=np.float64), np.asarray(monetary_value, dtype=np.float64)
        return np.asarray(p * (v + x * m) / (p * x + q - 1))

    def customer_lifetime_value(
        self,
        transaction_model: PurchaseModel,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        monetary_value: ArrayLike,
        *,
        horizon_months: int = 12,
        discount_rate: float = 0.01,
        time_unit: Literal["days", "weeks", "months"] = "days",
    ) -> Arr:
        """Σ_{k=1..horizon} E[Z] · (E[Y(k·u)] − E[Y((k−1)·u)]) / (1 + discount_rate)^k, u = periods per month.

        Matches lifetimes' ``GammaGammaFitter.customer_lifetime_value`` (its ``freq`` D/W/M = days/weeks/months).
        """
        spend = self.expected_average_value(frequency, monetary_value)
        per = PERIODS_PER_MONTH[time_unit]
        clv = np.zeros(np.shape(spend))
        before = np.zeros(np.shape(spend))
        for k in range(1, horizon_months + 1):
            upto = transaction_model.expected_purchases(k * per, frequency, recency, T)
            clv += spend * (upto - before) / (1 + discount_rate) ** k
            before = upto
        return clv
