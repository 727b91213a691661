"""BG/NBD: FHL (2005) published CDNOW values, lifetimes' BetaGeoFitter, analytic gradient, large frequencies."""

from __future__ import annotations

import warnings
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from omnicrm.errors import InputError
from omnicrm.portrait.clv.bgnbd import BetaGeoModel, FitError, bgnbd_log_likelihood
from omnicrm.portrait.clv.summary import rfm_summary_frame
from tests.portrait.numeric import central_differences

DATASETS = files("lifetimes") / "datasets"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL (2005), section 5
PUBLISHED_LL = -9582.4


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(str(DATASETS / "cdnow_customers_summary.csv"))


@pytest.fixture(scope="module")
def model(cdnow: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow)


@pytest.fixture(scope="module")
def reference(cdnow: pd.DataFrame) -> object:
    lifetimes = pytest.importorskip("lifetimes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lifetimes.BetaGeoFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def test_published_cdnow_params(model: BetaGeoModel) -> None:
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-2), name
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.05)


def test_published_params_from_our_own_summary() -> None:
    """The whole path: CDNOW_sample transactions -> our weekly summary (1997-01-01..09-30) -> FHL's estimates."""
    raw = pd.read_csv(
        str(DATASETS / "CDNOW_sample.txt"), sep=r"\s+", header=None, names=["m", "customer_id", "d", "n", "monetary"]
    )
    raw["timestamp"] = pd.to_datetime(raw["d"].astype(str), format="%Y%m%d")
    summary = rfm_summary_frame(raw, observation_end="1997-09-30", unit="weeks")
    assert len(summary) == 2357
    fitted = BetaGeoModel().fit(summary)
    for name, value in PUBLISHED.items():
        assert fitted.params_[name] == pytest.approx(value, rel=1e-2), name
    assert fitted.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.5)


def test_same_as_lifetimes(model: BetaGeoModel, reference: object, cdnow: pd.DataFrame) -> None:
    ref = reference
    for name in PUBLISHED:
        assert model.params_[name] == pytest.approx(ref.params_[name], rel=1e-4)  # type: ignore[attr-defined]
    ours_se = model.summary()["se(coef)"].to_numpy()
    np.testing.assert_allclose(ours_se, ref.summary["se(coef)"].to_numpy(), rtol=1e-3)  # type: ignore[attr-defined]
    sample = cdnow.sample(300, random_state=7)
    f, r, t = sample["frequency"].to_numpy(), sample["recency"].to_numpy(), sample["T"].to_numpy()
    for horizon in (1.0, 10.0, 39.0, 104.0):
        np.testing.assert_allclose(
            model.expected_purchases(horizon, f, r, t),
            ref.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, t),  # type: ignore[attr-defined]
            rtol=1e-4,
            atol=1e-8,
        )
    np.testing.assert_allclose(
        model.probability_alive(f, r, t),
        ref.conditional_probability_alive(f, r, t),
        rtol=1e-4,  # type: ignore[attr-defined]
    )
    ts = np.array([1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        model.expected_purchases_unconditional(ts),
        ref.expected_number_of_purchases_up_to_time(ts),
        rtol=1e-4,  # type: ignore[attr-defined]
    )


def test_penalizer_same_as_lifetimes(cdnow: pd.DataFrame) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    ours = BetaGeoModel(penalizer=0.01).fit(cdnow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.BetaGeoFitter(penalizer_coef=0.01).fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    for name in PUBLISHED:
        assert ours.params_[name] == pytest.approx(ref.params_[name], rel=1e-3)


@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (2.0, 0.5, 3.0, 0.7), (0.05, 30.0, 1.5, 12.0)])
def test_analytic_gradient_matches_finite_differences(params: tuple[float, ...], cdnow: pd.DataFrame) -> None:
    x, tx, t = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    p = np.array(params)
    _, grad = bgnbd_log_likelihood(p, x, tx, t, gradient=True)
    numeric = central_differences(lambda q: float(bgnbd_log_likelihood(q, x, tx, t).sum()), p)
    np.testing.assert_allclose(grad.sum(axis=1), numeric, rtol=1e-6, atol=1e-6 * len(x))


def test_large_frequencies_are_stable(model: BetaGeoModel) -> None:
    x = np.array([0.0, 10, 1e3, 1e5, 1e7])
    t = np.full(5, 38.86)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        alive = model.probability_alive(x, np.where(x > 0, 38.0, 0.0), t)
        expected = model.expected_purchases(39.0, x, np.where(x > 0, 38.0, 0.0), t)
        ll = bgnbd_log_likelihood(list(model.params_.values()), x, np.where(x > 0, 38.0, 0.0), t)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(expected))
    assert alive[0] == 1.0 and np.all((alive >= 0) & (alive <= 1))
    # a customer who bought until the end at rate x/T keeps buying at about that rate, times P(alive)
    assert expected[-1] == pytest.approx(alive[-1] * 1e7 / 38.86 * 39.0, rel=1e-2)
    # purchased at the very end: expected purchases grow with frequency
    at_end = model.expected_purchases(39.0, x, t, t)
    assert np.all(np.diff(at_end) > 0)


def test_expected_purchases_broadcasts_over_horizons(model: BetaGeoModel) -> None:
    out = model.expected_purchases(
        np.array([[1.0], [39.0]]), np.array([0, 2, 5]), np.array([0, 30.4, 38.0]), np.full(3, 38.86)
    )
    assert out.shape == (2, 3) and np.all(out[1] > out[0])


def test_input_errors_name_the_column(cdnow: pd.DataFrame) -> None:
    with pytest.raises(InputError) as err:
        BetaGeoModel().fit(cdnow.drop(columns=["recency"]))
    assert err.value.problems[0].field == "recency"
    assert "missing column 'recency'; the table has: ID, frequency, T" in str(err.value)
    with pytest.raises(FitError, match="not fitted yet"):
        BetaGeoModel().probability_alive([1], [1], [2])
    renamed = cdnow.rename(columns={"frequency": "x", "recency": "t_x"})
    assert BetaGeoModel().fit(renamed, frequency="x", recency="t_x").params_["r"] == pytest.approx(0.2426, rel=1e-3)
