"""The fast BG/NBD fit (distinct rows with weights, sums per distinct x and T) gives lifetimes' answers.

Correctness only: the timings are in benchmarks/portrait.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from omnicrm.portrait.clv.bgnbd import BetaGeoModel, bgnbd_log_likelihood, simulate_summary
from omnicrm.portrait.clv.summary import compress, factorize

TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}


def same_to_3_digits(value: float, reference: float) -> bool:
    """|value - reference| below half a unit in the reference's third significant digit."""
    return abs(value - reference) < 0.5 * 10 ** (math.floor(math.log10(abs(reference))) - 2)


@pytest.fixture(scope="module")
def draw() -> pd.DataFrame:
    rng = np.random.default_rng(20)
    return simulate_summary(**TRUTH, T=rng.integers(7, 7 * 78 + 1, 20_000) / 7.0, seed=rng)


@pytest.fixture(scope="module")
def ours(draw: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(draw)


def test_same_as_lifetimes_on_a_synthetic_draw(draw: pd.DataFrame, ours: BetaGeoModel) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.BetaGeoFitter().fit(draw["frequency"], draw["recency"], draw["T"])
    for name in TRUTH:
        assert same_to_3_digits(ours.params_[name], ref.params_[name]), (name, ours.params_[name], ref.params_[name])
    np.testing.assert_allclose(ours.summary()["se(coef)"].to_numpy(), ref.summary["se(coef)"].to_numpy(), rtol=1e-2)
    x, t_x, t_end = (draw[c].to_numpy(np.float64) for c in ("frequency", "recency", "T"))
    ref_ll = bgnbd_log_likelihood([ref.params_[k] for k in TRUTH], x, t_x, t_end).sum()
    assert ours.log_likelihood_ == pytest.approx(ref_ll, abs=1e-3)
    assert ours.log_likelihood_ >= ref_ll - 1e-6


def test_the_draw_recovers_the_true_parameters(ours: BetaGeoModel) -> None:
    se = ours.summary()["se(coef)"]
    for name, value in TRUTH.items():
        assert abs(ours.params_[name] - value) < 4 * se[name], name


def test_simulated_summaries_are_consistent(draw: pd.DataFrame) -> None:
    x, t_x, t_end = (draw[c].to_numpy() for c in ("frequency", "recency", "T"))
    assert np.all(t_x[x == 0] == 0) and np.all(t_x[x > 0] > 0) and np.all(t_x <= t_end)
    assert 0.3 < (x > 0).mean() < 0.6


def test_weights_are_repeated_rows(draw: pd.DataFrame) -> None:
    (x, t_x, t_end), w = compress(*(draw[c].to_numpy(np.float64) for c in ("frequency", "recency", "T")))
    assert w.sum() == len(draw) and len(w) < len(draw)
    weighted = BetaGeoModel().fit({"frequency": x, "recency": t_x, "T": t_end}, weights=w)
    full = BetaGeoModel().fit(draw)
    for name in TRUTH:
        assert weighted.params_[name] == pytest.approx(full.params_[name], rel=1e-6)
    assert weighted.log_likelihood_ == pytest.approx(full.log_likelihood_, rel=1e-9)


def test_compress_is_numpy_unique_rows() -> None:
    rng = np.random.default_rng(3)
    cols = [rng.integers(0, 4, 500).astype(np.float64), rng.choice([0.0, 0.5, 1.25], 500), rng.random(500).round(1)]
    w = rng.random(500)
    rows, summed = compress(*cols, weights=w)
    uniq, inverse = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
    np.testing.assert_array_equal(np.column_stack(rows), uniq)
    np.testing.assert_allclose(summed, np.bincount(inverse.ravel(), weights=w))
    codes, values, _ = factorize(*cols)
    for j in range(3):
        np.testing.assert_array_equal(values[j][codes[j]], uniq[:, j])
