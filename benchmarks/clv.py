"""CLV benchmarks on CDNOW (FHL 2005: 2,357 customers, calibration 1997-01-01..09-30, holdout to 1998-06-30, weeks).

1. Fit time of our BG/NBD and Gamma-Gamma against lifetimes' fitters on the same summary, in the same run
   (median of ``--repeat`` interleaved fits; ratio ours / lifetimes; ours includes the Hessian for standard errors,
   as lifetimes' does).
2. Holdout forecasts: MAE and RMSE per customer of predicted vs actual purchases in the 39 holdout weeks, and the
   aggregate (sum predicted vs sum actual), for our BG/NBD, lifetimes' BG/NBD, Pareto/NBD and MBG/NBD, and a naive
   rate baseline (x / T * 39). Gamma-Gamma: MAE of expected vs actual mean spend of customers who bought in both.

Run: ``.venv/bin/python benchmarks/clv.py [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.portrait.clv import BetaGeoModel, GammaGammaModel, calibration_and_holdout_frame


def cdnow_transactions() -> pd.DataFrame:
    path = files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    df = pd.read_csv(str(path), sep=r"\s+", header=None, names=["master_id", "customer_id", "date", "cds", "monetary"])
    df["timestamp"] = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
    return df


def race(ours: Callable[[], Any], ref: Callable[[], Any], repeat: int) -> tuple[float, float, Any, Any]:
    """Median times of two fits, interleaved so that load from other processes hits both alike."""
    a, b, out_a, out_b = [], [], None, None
    ours(), ref()  # warm-up
    for _ in range(repeat):
        start = time.perf_counter()
        out_a = ours()
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        out_b = ref()
        b.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b), out_a, out_b


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import lifetimes

    tx = cdnow_transactions()
    t_sum, s = timed(
        lambda: calibration_and_holdout_frame(
            tx, calibration_end="1997-09-30", observation_end="1998-06-30", unit="weeks"
        ),
        3,
    )
    f, r, T = s["frequency_cal"], s["recency_cal"], s["T_cal"]
    actual = s["frequency_holdout"].to_numpy(float)
    horizon = float(s["duration_holdout"].iloc[0])
    cal = pd.DataFrame({"frequency": f, "recency": r, "T": T, "monetary_value": s["monetary_value_cal"]})
    print(f"CDNOW: {len(s)} customers, {int(actual.sum())} holdout purchase days; summary (Ibis/DuckDB) {t_sum:.3f} s")

    print("\n1. fit time, median of", args.repeat)

    def ours_with_errors() -> BetaGeoModel:
        model = BetaGeoModel().fit(cal)
        model.summary()  # standard errors, as lifetimes computes inside fit
        return model

    t_ours, t_ref, bg, bg_ref = race(ours_with_errors, lambda: lifetimes.BetaGeoFitter().fit(f, r, T), args.repeat)
    print(f"  BG/NBD       ours {t_ours * 1e3:7.1f} ms  lifetimes {t_ref * 1e3:7.1f} ms  ratio {t_ours / t_ref:.2f}")
    rep = cal[cal["frequency"] > 0]
    t_ours, t_ref, gg, _ = race(
        lambda: GammaGammaModel().fit(cal),
        lambda: lifetimes.GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"]),
        args.repeat,
    )
    print(f"  Gamma-Gamma  ours {t_ours * 1e3:7.1f} ms  lifetimes {t_ref * 1e3:7.1f} ms  ratio {t_ours / t_ref:.2f}")
    print("  BG/NBD params:", {k: round(v, 4) for k, v in bg.params_.items()}, f"LL {bg.log_likelihood_:.2f}")
    print("  Gamma-Gamma params:", {k: round(v, 4) for k, v in gg.params_.items()})

    t_p, pnbd = timed(lambda: lifetimes.ParetoNBDFitter().fit(f, r, T), 1)
    _, mbg = timed(lambda: lifetimes.ModifiedBetaGeoFitter().fit(f, r, T), 1)
    forecasts = {
        "BG/NBD (ours)": bg.expected_purchases(horizon, f, r, T),
        "BG/NBD (lifetimes)": bg_ref.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, T),
        f"Pareto/NBD (lifetimes, fit {t_p:.1f} s)": pnbd.conditional_expected_number_of_purchases_up_to_time(
            horizon, f, r, T
        ),
        "MBG/NBD (lifetimes)": mbg.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, T),
        "naive rate x/T": (f / T * horizon).to_numpy(),
    }
    print(
        f"\n2. holdout ({horizon:.0f} weeks): per-customer MAE / RMSE, aggregate predicted vs actual {actual.sum():.0f}"
    )
    for name, pred in forecasts.items():
        err = np.asarray(pred, dtype=float) - actual
        mae, rmse = np.abs(err).mean(), np.sqrt((err**2).mean())
        print(f"  {name:38s} MAE {mae:.4f}  RMSE {rmse:.4f}  sum {np.sum(pred):8.1f}")
    both = (s["frequency_cal"] > 0) & (s["frequency_holdout"] > 0)
    spend = gg.expected_average_value(s["frequency_cal"][both], s["monetary_value_cal"][both])
    truth = s["monetary_value_holdout"][both].to_numpy()
    naive = s["monetary_value_cal"][both].to_numpy()
    print(
        f"  Gamma-Gamma spend ({int(both.sum())} customers): MAE {np.abs(spend - truth).mean():.2f}"
        f"  vs calibration mean as forecast {np.abs(naive - truth).mean():.2f}"
    )


if __name__ == "__main__":
    main()
