"""BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing Science 24(2).

While active, a customer buys at Poisson rate λ ~ Gamma(r, α); after each purchase they drop out with
probability p ~ Beta(a, b). Given a summary (x = frequency, t_x = recency, T) per customer:

- log-likelihood: FHL eq. (6), evaluated in logs (log-sum-exp of its two terms) with analytic gradients;
- ``expected_purchases_unconditional``: E[X(t)], FHL eq. (9);
- ``expected_purchases``: E[Y(t) | x, t_x, T], FHL eq. (10), with its 2F1 rewritten by Euler's transformation
  so that large frequencies neither overflow nor lose precision;
- ``probability_alive``: P(active | x, t_x, T), FHL (2008) note "Computing P(alive) using the BG/NBD model".

The shared fitting machinery (ML on log-parameters with L-BFGS-B, Hessian standard errors) lives here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from omnicrm.errors import OmnicrmError
from omnicrm.portrait.clv.summary import columns, compress

__all__ = ["BetaGeoModel", "FitError", "bgnbd_log_likelihood", "fit_log_params", "hessian", "summary_frame"]

Arr = NDArray[np.float64]
Objective = Callable[[Arr], tuple[float, Arr]]


class FitError(OmnicrmError):
    """The optimiser did not converge; an L2 penalizer (e.g. 0.001) usually helps."""

    code = "fit_error"


def fit_log_params(objective: Objective, x0: Arr, n: float, penalizer: float) -> tuple[Arr, float]:
    """Minimise NLL / n + penalizer * |params|² over log-parameters (L-BFGS-B with the analytic gradient)."""

    def f(log_p: Arr) -> tuple[float, Arr]:
        p = np.exp(log_p)
        val, grad = objective(p)
        return val / n + penalizer * float(p @ p), (grad / n + 2.0 * penalizer * p) * p

    with np.errstate(all="ignore"):
        res = minimize(
            f, np.log(x0), jac=True, method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10}
        )
    if not (np.isfinite(res.fun) and np.all(np.isfinite(res.x))) or np.linalg.norm(res.jac) > 1e-3:
        raise FitError(f"the model did not converge ({res.message}); try a penalizer such as 0.001")
    return np.exp(res.x), float(res.fun)


def hessian(objective: Objective, p: Arr) -> Arr:
    """Hessian of the total NLL at ``p``: central differences of the analytic gradient."""
    h = np.empty((len(p), len(p)))
    for i in range(len(p)):
        step = 1e-5 * p[i]
        up, down = p.copy(), p.copy()
        up[i] += step
        down[i] -= step
        h[:, i] = (objective(up)[1] - objective(down)[1]) / (2 * step)
    return (h + h.T) / 2


def summary_frame(names: Sequence[str], p: Arr, hess: Arr) -> pd.DataFrame:
    """coef, standard error (from the inverse Hessian of the NLL) and 95% bounds, one row per parameter."""
    try:
        se = np.sqrt(np.clip(np.diag(np.linalg.inv(hess)), 0.0, None))
    except np.linalg.LinAlgError:
        se = np.full(len(p), np.nan)
    return pd.DataFrame(
        {"coef": p, "se(coef)": se, "lower 95% bound": p - 1.96 * se, "upper 95% bound": p + 1.96 * se},
        index=pd.Index(list(names), name="param"),
    )


def bgnbd_log_likelihood(params: ArrayLike, x: Arr, t_x: Arr, T: Arr, *, gradient: bool = False) -> Any:
    """Per-customer log-likelihood, FHL eq. (6); with ``gradient`` also d/d(r, α, a, b), shape (4, n)."""
    r, alpha, a, b = np.asarray(params, dtype=np.float64)
    rep = x > 0
    xm1 = np.where(rep, x - 1, 0.0)
    c1 = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    c2 = np.where(rep, betaln(a + 1, b + xm1) - (r + x) * np.log(alpha + t_x), -np.inf)
    m = np.logaddexp(c1, c2)
    ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b) + m
    if not gradient:
        return ll
    w1, w2 = np.exp(c1 - m), np.exp(c2 - m)
    dab, dabx = digamma(a + b), digamma(a + b + x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w1 * np.log(alpha + T) - w2 * np.log(alpha + t_x)
    d_alpha = r / alpha - w1 * (r + x) / (alpha + T) - w2 * (r + x) / (alpha + t_x)
    d_a = dab - digamma(a) + w1 * (digamma(a) - dabx) + w2 * (digamma(a + 1) - dabx)
    d_b = dab - digamma(b) + w1 * (digamma(b + x) - dabx) + w2 * (digamma(b + xm1) - dabx)
    return ll, np.vstack([d_r, d_alpha, d_a, d_b])


class BetaGeoModel:
    """BG/NBD model (Fader, Hardie & Lee 2005): ``fit(summary)``, then expected purchases and P(alive).

    ``penalizer`` adds ``penalizer * Σ params²`` to the mean negative log-likelihood, on time scaled so that
    max(T) = 1, exactly as lifetimes' ``BetaGeoFitter(penalizer_coef=...)`` does.
    """

    param_names = ("r", "alpha", "a", "b")

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
        recency: str = "recency",
        T: str = "T",
        weights: ArrayLike | None = None,
    ) -> BetaGeoModel:
        """Fit by maximum likelihood to a summary table (pandas, pyarrow or Ibis) with the named columns."""
        x, t_x, t_end = columns(data, [frequency, recency, T])
        (x, t_x, t_end), w = compress(x, t_x, t_end, weights=weights)
        scale = 1.0 / float(t_end.max())

        def objective_at(sx: Arr, st: Arr) -> Objective:
            def objective(p: Arr) -> tuple[float, Arr]:
                ll, grad = bgnbd_log_likelihood(p, x, sx, st, gradient=True)
                return -float(w @ ll), -(grad @ w)

            return objective

        p, _ = fit_log_params(objective_at(t_x * scale, t_end * scale), np.ones(4), float(w.sum()), self.penalizer)
        p[1] /= scale
        objective = objective_at(t_x, t_end)
        self.params_ = dict(zip(self.param_names, map(float, p), strict=True))
        self.log_likelihood_ = -objective(p)[0]
        self._hessian = hessian(objective, p)
        return self

    def _p(self) -> tuple[float, float, float, float]:
        if not self.params_:
            raise FitError("the model is not fitted yet; call fit(summary) first")
        return self.params_["r"], self.params_["alpha"], self.params_["a"], self.params_["b"]

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors from the Hessian of the log-likelihood at the MLE."""
        self._p()
        assert self._hessian is not None
        return summary_frame(self.param_names, np.array(list(self.params_.values())), self._hessian)

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Arr:
        """Per-customer log-likelihood at the fitted parameters (FHL eq. 6)."""
        x, t_x, t_end = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        return np.asarray(bgnbd_log_likelihood(self._p(), x, t_x, t_end))

    def expected_purchases_unconditional(self, t: ArrayLike) -> Arr:
        """E[X(t)]: expected purchases of a new customer in a period of length t (FHL eq. 9)."""
        r, alpha, a, b = self._p()
        t = np.asarray(t, dtype=np.float64)
        bracket = 1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return np.asarray((a + b - 1) / (a - 1) * bracket)

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Arr:
        """P(alive | x, t_x, T) = 1 / (1 + δ(x>0) a/(b+x−1) ((α+T)/(α+t_x))^(r+x)) (FHL 2008 note, eq. 4)."""
        r, alpha, a, b = self._p()
        x, t_x, t_end = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        rep = x > 0
        z = np.log(a) - np.log(b + np.where(rep, x, 1.0) - 1) + (r + x) * (np.log(alpha + t_end) - np.log(alpha + t_x))
        return np.asarray(np.where(rep, expit(-z), 1.0))

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Arr:
        """E[Y(t) | x, t_x, T]: expected purchases in the next t periods (FHL eq. 10).

        Eq. (10)'s ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x−1; z) is computed as
        (1−z)^(a−1) 2F1(a+b−1−r, a−1; a+b+x−1; z), z = t/(α+T+t) (Euler's transformation): no overflow in x.
        """
        r, alpha, a, b = self._p()
        t = np.asarray(t, dtype=np.float64)
        x, t_end = np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64)
        z = t / (alpha + t_end + t)
        c = a + b + x - 1
        bracket = -np.expm1((a - 1) * np.log1p(-z)) - (1 - z) ** (a - 1) * (hyp2f1(a + b - 1 - r, a - 1, c, z) - 1)
        return np.asarray(c / (a - 1) * bracket * self.probability_alive(frequency, recency, T))
