"""RFM summaries: CDNOW against the published/lifetimes summaries, a plain pandas reference, input errors."""

from __future__ import annotations

import datetime as dt
from importlib.resources import files

import hypothesis.strategies as st
import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from omnicrm.errors import InputError
from omnicrm.portrait.clv.summary import (
    calibration_and_holdout,
    calibration_and_holdout_frame,
    columns,
    rfm_summary,
    rfm_summary_frame,
)

DATASETS = files("lifetimes") / "datasets"


def cdnow_sample() -> pd.DataFrame:
    """FHL's 1/10th CDNOW cohort (2,357 customers): master id, sample id, yyyymmdd, CDs, dollars; no header."""
    df = pd.read_csv(
        str(DATASETS / "CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "monetary"],
        dtype={"master_id": str},
    )
    df["timestamp"] = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
    return df


def cdnow_master() -> pd.DataFrame:
    """The full CDNOW cohort (23,570 customers); header line, ids with leading zeros kept as strings."""
    df = pd.read_csv(str(DATASETS / "CDNOW_master.txt"), sep=r"\s+", dtype={"customer_id": str})
    df["timestamp"] = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
    return df.rename(columns={"dollar_value": "monetary"})


def pandas_summary(df: pd.DataFrame, end: dt.date, per: float, start: dt.date | None = None) -> pd.DataFrame:
    """Reference: a plain pandas groupby, one purchase per customer and day."""
    df = df.assign(day=pd.to_datetime(df["timestamp"]).dt.normalize())
    df = df[df["day"] <= pd.Timestamp(end)]
    daily = df.groupby(["customer_id", "day"], as_index=False)["monetary"].sum().sort_values(["customer_id", "day"])
    g = daily.groupby("customer_id", sort=True)
    out = g.agg(first=("day", "min"), last=("day", "max"), n=("day", "size"), total=("monetary", "sum"))
    out["first_value"] = g["monetary"].first()
    x = out["n"] - 1
    return pd.DataFrame(
        {
            "customer_id": out.index,
            "frequency": x.to_numpy(),
            "recency": ((out["last"] - out["first"]).dt.days / per).to_numpy(),
            "T": ((pd.Timestamp(end) - out["first"]).dt.days / per).to_numpy(),
            "monetary_value": np.where(x > 0, (out["total"] - out["first_value"]) / x.clip(lower=1), 0.0),
        }
    )


def test_cdnow_calibration_matches_fhl_summary() -> None:
    ours = calibration_and_holdout_frame(
        cdnow_sample(), calibration_end="1997-09-30", observation_end="1998-06-30", unit="weeks"
    )
    ref = pd.read_csv(str(DATASETS / "cdnow_customers_summary.csv"))
    money = pd.read_csv(str(DATASETS / "cdnow_customers_summary_with_transactions.csv"))
    assert len(ours) == 2357
    assert (ours["customer_id"].to_numpy() == ref["ID"].to_numpy()).all()
    assert (ours["frequency_cal"].to_numpy() == ref["frequency"].to_numpy()).all()
    # the published files are rounded to two decimals
    np.testing.assert_allclose(ours["recency_cal"], ref["recency"], atol=0.005)
    np.testing.assert_allclose(ours["T_cal"], ref["T"], atol=0.005)
    np.testing.assert_allclose(ours["monetary_value_cal"], money["zbar"], atol=0.0051)
    assert (ours["duration_holdout"] == 39.0).all()
    assert ours["frequency_holdout"].sum() > 0


def test_cdnow_master_matches_pandas_reference() -> None:
    df = cdnow_master()
    end = dt.date(1998, 6, 30)
    ours = rfm_summary_frame(df, observation_end=end, unit="weeks")
    ref = pandas_summary(df, end, 7.0)
    assert len(ours) == 23570
    assert ours["customer_id"].iloc[0] == "00001"  # leading zeros kept
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, atol=1e-9, rtol=0)


transactions = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 60),  # day offset
        st.integers(0, 23),  # hour: several purchases on one day count once
        st.integers(0, 10_000).map(lambda c: c / 100),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(rows=transactions, end_offset=st.integers(0, 70), unit=st.sampled_from(["days", "weeks"]))
def test_summary_equals_pandas_reference(rows: list[tuple[str, int, int, float]], end_offset: int, unit: str) -> None:
    base = dt.datetime(2024, 1, 1)
    df = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": [base + dt.timedelta(days=r[1], hours=r[2]) for r in rows],
            "monetary": [r[3] for r in rows],
        }
    )
    end = (base + dt.timedelta(days=end_offset)).date()
    ours = rfm_summary_frame(df, observation_end=end, unit=unit)
    ref = pandas_summary(df, end, 7.0 if unit == "weeks" else 1.0)
    if ref.empty:
        assert ours.empty
        return
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, atol=1e-9, rtol=0)
    # holdout = the purchase days after the calibration end, per calibration customer
    cal_end = (base + dt.timedelta(days=end_offset // 2)).date()
    split = calibration_and_holdout_frame(df, calibration_end=cal_end, observation_end=end, unit=unit)
    days = df.assign(day=df["timestamp"].dt.normalize())
    hold = days[(days["day"] > pd.Timestamp(cal_end)) & (days["day"] <= pd.Timestamp(end))]
    expected = hold.groupby("customer_id")["day"].nunique()
    got = split.set_index("customer_id")["frequency_holdout"]
    assert got.to_dict() == {c: int(expected.get(c, 0)) for c in got.index}


def test_summary_is_backend_neutral_ibis() -> None:
    t = ibis.table({"cid": "string", "ts": "timestamp", "amount": "float64"}, name="orders")
    expr = calibration_and_holdout(
        t,
        calibration_end="2024-03-31",
        observation_end="2024-06-30",
        customer_id="cid",
        timestamp="ts",
        monetary="amount",
        validate=False,
    )
    pytest.importorskip("pyspark")
    assert ibis.pyspark  # loads the backend, which registers its compile options
    for dialect in ("duckdb", "pyspark"):
        assert "SELECT" in ibis.to_sql(expr, dialect=dialect)
    assert expr.schema().names == (
        "customer_id",
        "frequency_cal",
        "recency_cal",
        "T_cal",
        "monetary_value_cal",
        "frequency_holdout",
        "monetary_value_holdout",
        "duration_holdout",
    )


def test_summary_without_monetary_and_date_column() -> None:
    df = pd.DataFrame(
        {"customer_id": [1, 1, 2], "timestamp": [dt.date(2024, 1, 1), dt.date(2024, 1, 8), dt.date(2024, 1, 2)]}
    )
    out = rfm_summary_frame(df, observation_end="2024-01-15", monetary=None, unit="weeks")
    assert out.to_dict("list") == {
        "customer_id": [1, 2],
        "frequency": [1, 0],
        "recency": [1.0, 0.0],
        "T": [2.0, 13 / 7],
        "monetary_value": [0.0, 0.0],
    }


def test_missing_column_is_named() -> None:
    df = pd.DataFrame({"customer_id": [1], "ts": [dt.datetime(2024, 1, 1)], "monetary": [1.0]})
    with pytest.raises(InputError) as err:
        rfm_summary_frame(df, observation_end="2024-02-01")
    assert err.value.problems[0].field == "timestamp"
    assert "missing column 'timestamp' (timestamp); the table has: customer_id, ts, monetary" in str(err.value)


def test_duplicated_column_is_named() -> None:
    df = pd.DataFrame(
        [[1, dt.datetime(2024, 1, 1), 1.0, 2.0]], columns=["customer_id", "timestamp", "monetary", "monetary"]
    )
    with pytest.raises(InputError, match="duplicated column 'monetary' \\(2 times\\)"):
        rfm_summary_frame(df, observation_end="2024-02-01")
    with pytest.raises(InputError, match="column 'monetary' is given as both timestamp and monetary"):
        rfm_summary(ibis.memtable(df.iloc[:, :3]), observation_end="2024-02-01", timestamp="monetary")


def test_bad_rows_are_quoted() -> None:
    df = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "timestamp": [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 3)],
            "monetary": [1.0, 2.0, -3.5],
        }
    )
    with pytest.raises(InputError) as err:
        rfm_summary_frame(df, observation_end="2024-02-01")
    text = str(err.value)
    assert [p.field for p in err.value.problems] == ["timestamp", "monetary"]
    assert "1 row(s) where 'timestamp' is null, e.g. [{'customer_id': 'b', 'timestamp': None, 'monetary': 2.0}]" in text
    assert "1 row(s) where 'monetary' is negative" in text and "'customer_id': 'c'" in text


def test_wrong_types_are_named() -> None:
    df = pd.DataFrame({"customer_id": [1], "timestamp": ["2024-01-01"], "monetary": ["x"]})
    with pytest.raises(InputError) as err:
        rfm_summary_frame(df, observation_end="2024-02-01")
    assert [p.field for p in err.value.problems] == ["timestamp", "monetary"]


def test_columns_names_missing_and_duplicated() -> None:
    df = pd.DataFrame([[1, 2.0, 3.0]], columns=["frequency", "recency", "recency"])
    with pytest.raises(InputError) as err:
        columns(df, ["frequency", "recency", "T"])
    assert [str(p) for p in err.value.problems] == [
        "field 'recency': duplicated column 'recency'",
        "field 'T': missing column 'T'; the table has: frequency, recency, recency",
    ]
    with pytest.raises(InputError, match="field 'recency': 1 negative or missing value"):
        columns(pd.DataFrame({"recency": [1.0, -1.0]}), ["recency"])
