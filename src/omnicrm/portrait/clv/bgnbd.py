"""BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing Science 24(2).

While active, a customer buys at Poisson rate λ ~ Gamma(r, α); after each purchase they drop out with
probability p ~ Beta(a, b). Given a summary (x = frequency, t_x = recency, T) per customer:

- log-likelihood: FHL eq. (6), evaluated in logs (log-sum-exp of its two terms) with analytic gradients; the fit
  sums it over the distinct (x, t_x, T) rows with weights, special functions evaluated once per distinct x;
- ``expected_purchases_unconditional``: E[X(t)], FHL eq. (9);
- ``expected_purchases``: E[Y(t) | x, t_x, T], FHL eq. (10), with its 2F1 rewritten by Euler's transformation
  so that large frequencies neither overflow nor lose precision;
- ``probability_alive``: P(active | x, t_x, T), FHL (2008) note "Computing P(alive) using the BG/NBD model".

The shared fitting machinery (ML on log-parameters with BFGS, Hessian standard errors) lives here too.
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
from omnicrm.portrait.clv.summary import columns, factorize

__all__ = [
    "BetaGeoModel",
    "FitError",
    "bgnbd_log_likelihood",
    "fit_log_params",
    "hessian",
    "simulate_summary",
    "summary_frame",
]

Arr = NDArray[np.float64]
Objective = Callable[[Arr], tuple[float, Arr]]


class FitError(OmnicrmError):
    """The optimiser did not converge; an L2 penalizer (e.g. 0.001) usually helps."""

    code = "fit_error"


def fit_log_params(objective: Objective, x0: Arr, n: float, penalizer: float) -> tuple[Arr, float]:
    """Minimise NLL / n + penalizer * |params|² over log-parameters (BFGS with the analytic gradient).

    Stops when every component of the gradient (of the mean NLL, per log-parameter) is below 1e-8: parameters to
    ~7 significant digits (lifetimes stops at 1e-7). BFGS rather than L-BFGS-B: for 3 or 4 parameters it needs
    about as many evaluations, and it runs in numpy, whereas L-BFGS-B calls scipy's multi-threaded OpenBLAS every
    iteration, which wakes its worker threads; on a busy 2-core host that made a 10 ms fit take 100+ ms.
    """

    def f(log_p: Arr) -> tuple[float, Arr]:
        p = np.exp(log_p)
        val, grad = objective(p)
        return val / n + penalizer * float(np.sum(p * p)), (grad / n + 2.0 * penalizer * p) * p

    with np.errstate(all="ignore"):
        res = minimize(f, np.log(x0), jac=True, method="BFGS", options={"maxiter": 5000, "gtol": 1e-8})
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


def simulate_summary(
    r: float, alpha: float, a: float, b: float, T: ArrayLike, *, seed: int | np.random.Generator | None = None
) -> pd.DataFrame:
    """Draw one summary (frequency, recency, T) per entry of ``T`` from the BG/NBD process (FHL 2005, section 3).

    λ ~ Gamma(r, α) and p ~ Beta(a, b) per customer; the customer drops out right after repeat purchase J ~
    Geometric(p); N ~ Poisson(λT) purchases would fall in (0, T] had they stayed, so x = min(N, J) and, the
    purchase times of a Poisson process given N being uniform order statistics, t_x = T · Beta(x, N − x + 1).
    Vectorised: no loop over customers.
    """
    rng = np.random.default_rng(seed)
    t_end = np.asarray(T, dtype=np.float64)
    n = len(t_end)
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.geometric(np.clip(rng.beta(a, b, n), 1e-12, 1.0))
    would = rng.poisson(lam * t_end)
    x = np.minimum(would, drop)
    t_x = np.where(x > 0, t_end * rng.beta(np.maximum(x, 1), would - x + 1), 0.0)
    return pd.DataFrame({"frequency": x.astype(np.int64), "recency": t_x, "T": t_end})


def _dot(u: NDArray[Any], v: NDArray[Any]) -> float:
    """Σ u·v without BLAS: OpenBLAS runs a dot of 10k+ elements on threads whose wake-up costs more than the sum."""
    return float(np.einsum("i,i->", u, v))


class _Patterns:
    """The distinct (x, t_x, T) rows of a summary with their weights, arranged for fast sums of FHL eq. (6).

    Writing c1 = B(a, b+x) − (r+x) log(α+T) and c2 = B(a+1, b+x−1) − (r+x) log(α+t_x), eq. (6) is
    ll = log Γ(r+x) − log Γ(r) + r log α − B(a, b) + c1 + softplus(d), with d = c2 − c1 =
    log(a / (b+x−1)) − (r+x) (log(α+t_x) − log(α+T)) for x > 0 (and no softplus term for x = 0). Everything but
    softplus(d) depends on x alone or on T alone, so it is summed per distinct x and per distinct T; only the
    repeat buyers' rows need per-row work, and that without special functions.
    """

    def __init__(self, x: Arr, t_x: Arr, T: Arr, weights: ArrayLike | None) -> None:
        (xc, tc, Tc), (self.xv, tv, self.Tv), w = factorize(x, t_x, T, weights=weights)
        self.n = float(w.sum())
        self.max_T = float(self.Tv[-1])
        self.w_x = np.bincount(xc, weights=w, minlength=len(self.xv))
        self.w_T = np.bincount(Tc, weights=w, minlength=len(self.Tv))
        self.wx_T = np.bincount(Tc, weights=w * self.xv[xc], minlength=len(self.Tv))
        rep = self.xv[xc] > 0
        self.rep_x, self.rep_T, self.rep_w = xc[rep], Tc[rep], w[rep]
        self.rep_xv, self.rep_t = self.xv[self.rep_x], tv[tc[rep]]

    def objective(self, params: Arr, scale: float = 1.0) -> tuple[float, Arr]:
        """Total negative log-likelihood and its gradient in (r, α, a, b), with times multiplied by ``scale``."""
        r, alpha, a, b = params
        xv, xm1 = self.xv, np.maximum(self.xv, 1.0) - 1.0
        dab, dabx = digamma(a + b), digamma(a + b + xv)
        at_T = alpha + scale * self.Tv
        log_T, inv_T = np.log(at_T), 1.0 / at_T
        # the parts that depend on x alone or on T alone
        per_x = gammaln(r + xv) - gammaln(r) - betaln(a, b) + betaln(a, b + xv)
        ll = _dot(self.w_x, per_x) + self.n * r * np.log(alpha) - _dot(r * self.w_T + self.wx_T, log_T)
        d_r = _dot(self.w_x, digamma(r + xv) - digamma(r)) + self.n * np.log(alpha) - _dot(self.w_T, log_T)
        d_alpha = self.n * r / alpha - _dot(r * self.w_T + self.wx_T, inv_T)
        d_a = _dot(self.w_x, dab - dabx)
        d_b = _dot(self.w_x, dab - digamma(b) + digamma(b + xv) - dabx)
        # softplus(d) of the repeat buyers, computed stably; its derivative is s = expit(d)
        at_t = alpha + scale * self.rep_t
        rx = r + self.rep_xv
        gap = np.log(at_t) - log_T[self.rep_T]
        d = (np.log(a) - np.log(b + xm1))[self.rep_x] - rx * gap
        e = np.exp(-np.abs(d))
        ll += _dot(self.rep_w, np.maximum(d, 0.0) + np.log1p(e))
        s = self.rep_w * np.where(d >= 0.0, 1.0, e) / (1.0 + e)
        d_r -= _dot(s, gap)
        d_alpha -= _dot(s * rx, 1.0 / at_t - inv_T[self.rep_T])
        d_a += s.sum() / a
        d_b -= _dot(np.bincount(self.rep_x, weights=s, minlength=len(xv)), 1.0 / (b + xm1))
        return -float(ll), -np.array([d_r, d_alpha, d_a, d_b])


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
        self._patterns: _Patterns | None = None

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
        patterns = _Patterns(x, t_x, t_end, weights)
        scale = 1.0 / patterns.max_T
        p, _ = fit_log_params(lambda q: patterns.objective(q, scale), np.ones(4), patterns.n, self.penalizer)
        p[1] /= scale
        self.params_ = dict(zip(self.param_names, map(float, p), strict=True))
        self.log_likelihood_ = -patterns.objective(p)[0]
        self._hessian = None
        self._patterns = patterns
        return self

    def _p(self) -> tuple[float, float, float, float]:
        if not self.params_:
            raise FitError("the model is not fitted yet; call fit(summary) first")
        return self.params_["r"], self.params_["alpha"], self.params_["a"], self.params_["b"]

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors from the Hessian of the log-likelihood at the MLE (computed here, once)."""
        p = np.array(self._p())
        if self._hessian is None:
            assert self._patterns is not None
            self._hessian = hessian(self._patterns.objective, p)
            self._patterns = None
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
