"""Gamma-Gamma: published CDNOW values (Fader & Hardie note 025), lifetimes' GammaGammaFitter, gradients, CLV."""

from __future__ import annotations

import warnings
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from omnicrm.errors import InputError
from omnicrm.portrait.clv.bgnbd import BetaGeoModel, FitError
from omnicrm.portrait.clv.gamma_gamma import GammaGammaModel, gamma_gamma_log_likelihood
from tests.portrait.numeric import central_differences

DATASETS = files("lifetimes") / "datasets"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    df = pd.read_csv(str(DATASETS / "cdnow_customers_summary_with_transactions.csv"))
    return df.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})


@pytest.fixture(scope="module")
def model(cdnow: pd.DataFrame) -> GammaGammaModel:
    return GammaGammaModel().fit(cdnow)


def test_published_cdnow_params(model: GammaGammaModel) -> None:
    published = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie (2013), note 025
    for name, value in published.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-2), name
    assert model.summary()["se(coef)"].gt(0).all()


def test_same_as_lifetimes(model: GammaGammaModel, cdnow: pd.DataFrame) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    repeat = cdnow[cdnow["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
        bg_ref = lifetimes.BetaGeoFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    for name in ("p", "q", "v"):
        assert model.params_[name] == pytest.approx(ref.params_[name], rel=1e-5)
    np.testing.assert_allclose(model.summary()["se(coef)"], ref.summary["se(coef)"], rtol=1e-3)
    sample = cdnow.sample(300, random_state=3)
    f, m = sample["frequency"], sample["monetary_value"]
    np.testing.assert_allclose(
        model.expected_average_value(f, m), ref.conditional_expected_average_profit(f, m), rtol=1e-6
    )
    bg = BetaGeoModel().fit(cdnow)
    for unit, freq in (("weeks", "W"), ("days", "D")):
        ours = model.customer_lifetime_value(
            bg, f, sample["recency"], sample["T"], m, horizon_months=12, discount_rate=0.01, time_unit=unit
        )
        theirs = ref.customer_lifetime_value(
            bg_ref, f, sample["recency"], sample["T"], m, time=12, discount_rate=0.01, freq=freq
        )
        np.testing.assert_allclose(ours, theirs.to_numpy(), rtol=1e-4)


def test_population_mean_for_new_customers(model: GammaGammaModel) -> None:
    p, q, v = model.params_["p"], model.params_["q"], model.params_["v"]
    assert model.expected_average_value([0], [0])[0] == pytest.approx(p * v / (q - 1))
    # more transactions -> the estimate moves towards the customer's own mean
    est = model.expected_average_value([1, 10, 1000], [100, 100, 100])
    assert np.all(np.diff(np.abs(est - 100)) < 0)


def test_analytic_gradient_matches_finite_differences(cdnow: pd.DataFrame) -> None:
    rep = cdnow[cdnow["frequency"] > 0]
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    for params in ([6.25, 3.74, 15.44], [0.5, 8.0, 2.0]):
        p = np.array(params)
        _, grad = gamma_gamma_log_likelihood(p, x, m, gradient=True)
        numeric = central_differences(lambda q: float(gamma_gamma_log_likelihood(q, x, m).sum()), p)
        np.testing.assert_allclose(grad.sum(axis=1), numeric, rtol=1e-6, atol=1e-6 * len(x))


def test_input_errors(cdnow: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="missing column 'monetary_value'"):
        GammaGammaModel().fit(cdnow.drop(columns=["monetary_value"]))
    with pytest.raises(FitError, match="needs repeat customers"):
        GammaGammaModel().fit(pd.DataFrame({"frequency": [0, 0], "monetary_value": [0.0, 0.0]}))
    with pytest.raises(FitError, match="not fitted yet"):
        GammaGammaModel().expected_average_value([1], [1.0])
