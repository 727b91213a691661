"""The merchant's calendar: promotions (Double 11 presale/balance, Double 12, 618), seasonality and
time-of-day profiles, as per-day weight curves that samplers draw from.

Times are int64 "Beijing wall-clock seconds since 1970-01-01" (naive local time, +08:00).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from omnicrm.simulate.vec import Rng, sample_days

NONE, D11_PRESALE, D11_WAVE, D11_DAY, D12, P618 = 0, 1, 2, 3, 4, 5
PROMO_LABELS = ("", "双11", "双11", "双11", "双12", "618")

_ONLINE_HOURS = np.array(
    [0.9, 0.5, 0.25, 0.12, 0.08, 0.08, 0.15, 0.35, 0.7, 1.0, 1.2, 1.2,
     1.3, 1.2, 1.2, 1.2, 1.1, 1.0, 1.1, 1.4, 1.7, 1.9, 1.8, 1.4]
)  # fmt: skip
_D11_HOURS = _ONLINE_HOURS * np.r_[[16.0, 6.0, 2.0], np.ones(17), [1.5, 1.5, 1.5, 1.5]]
_STORE_HOURS = np.r_[np.zeros(10), [0.6, 1, 1.1, 1, 1, 1.2, 1.3, 1.3, 1.2, 1.4, 1.3, 0.8], np.zeros(2)]


@dataclass(frozen=True)
class Timeline:
    """Per-day calendar arrays and cumulative weight curves between start and end (inclusive)."""

    start: date
    end: date
    day0: int
    n_days: int
    month: np.ndarray
    promo: np.ndarray
    cw_online: np.ndarray
    cw_store: np.ndarray
    cw_promo: np.ndarray
    cw_acquire: np.ndarray
    cw_acquire_promo: np.ndarray

    @property
    def end_s(self) -> int:
        """First second after the simulated period."""
        return (self.day0 + self.n_days) * 86400

    def day_index(self, d: date) -> int:
        return int(np.datetime64(d, "D").astype(np.int64)) - self.day0

    def sample(self, rng: Rng, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """A day index in [lo, hi) per row, weighted by the curve `cw`."""
        return sample_days(rng, cw, lo, hi)

    def mass(self, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Expected count per unit yearly rate over [lo, hi)."""
        return np.asarray(cw[hi] - cw[lo], dtype=np.float64)

    def seconds(self, rng: Rng, day: np.ndarray, store: bool = False) -> np.ndarray:
        """Local timestamps on the given days, with a realistic time-of-day profile."""
        n = len(day)
        hour = np.empty(n, dtype=np.int64)
        if store:
            hour[:] = rng.choice(24, size=n, p=_STORE_HOURS / _STORE_HOURS.sum())
        else:
            d11 = self.promo[day] == D11_DAY
            hour[~d11] = rng.choice(24, size=int((~d11).sum()), p=_ONLINE_HOURS / _ONLINE_HOURS.sum())
            hour[d11] = rng.choice(24, size=int(d11.sum()), p=_D11_HOURS / _D11_HOURS.sum())
        return (self.day0 + day.astype(np.int64)) * 86400 + hour * 3600 + rng.integers(0, 3600, size=n)


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Cumulative curve normalised to a mean daily weight of 1/365 (mass 1 ≈ one average year)."""
    w = weights / weights.mean() / 365.0
    return np.concatenate([[0.0], np.cumsum(w)])


def build_timeline(start: date, end: date) -> Timeline:
    """Compute calendar flags and the weight curves for the period."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    n = len(days)
    months = days.astype("datetime64[M]")
    month = (months.astype(np.int64) % 12 + 1).astype(np.int64)
    dom = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    md = month * 100 + dom

    promo = np.zeros(n, dtype=np.int8)
    promo[(md >= 1021) & (md <= 1031)] = D11_PRESALE
    promo[(md >= 1101) & (md <= 1110)] = D11_WAVE
    promo[md == 1111] = D11_DAY
    promo[(md >= 1210) & (md <= 1212)] = D12
    promo[(md >= 601) & (md <= 618)] = P618

    weekend = weekday >= 5
    spring_festival = ((md >= 125) & (md <= 205)).astype(np.float64)
    base = np.where(weekend, 1.1, 1.0) * (1.0 - 0.45 * spring_festival)

    online_mult = np.array([1.0, 2.0, 3.0, 18.0, 4.0, 1.8])[promo]
    online_mult = np.where(md == 1212, 8.0, np.where(md == 618, 5.0, online_mult))
    store_mult = np.where(weekend, 1.9, 1.0) * (1.0 - 0.6 * spring_festival)
    store_mult *= np.where((md >= 1001) & (md <= 1007), 2.2, 1.0) * np.where((md >= 501) & (md <= 505), 1.8, 1.0)
    store_mult *= np.where(promo != NONE, 1.3, 1.0)
    promo_w = np.array([0.02, 1.0, 2.0, 12.0, 4.0, 1.5])[promo] * np.where(md == 1212, 2.0, 1.0)
    acquire = base * np.array([1.0, 1.6, 2.0, 6.0, 2.0, 1.3])[promo]
    acquire_promo = np.array([0.0, 1.0, 2.5, 15.0, 5.0, 0.0])[promo] * np.where(md == 1212, 2.0, 1.0)
    if acquire_promo.sum() == 0:  # a period without any Double 11/12: fall back to ordinary days
        acquire_promo = acquire.copy()

    return Timeline(
        start=start,
        end=end,
        day0=int(days[0].astype(np.int64)),
        n_days=n,
        month=month,
        promo=promo,
        cw_online=_cumulative(base * online_mult),
        cw_store=_cumulative(store_mult),
        cw_promo=_cumulative(promo_w),
        cw_acquire=_cumulative(acquire),
        cw_acquire_promo=_cumulative(acquire_promo),
    )
