"""RFM summaries per customer from a transaction table, as Ibis expressions (DuckDB and Spark alike).

The summary is the input of the buy-till-you-die models (Fader, Hardie & Lee 2005, "Counting your customers
the easy way", section 2): for each customer, ``frequency`` x = number of repeat purchase periods (purchases on
one day count once, as in lifetimes), ``recency`` t_x = time from the first to the last purchase, ``T`` = time
from the first purchase to the end of observation, and ``monetary_value`` = mean value of the repeat purchase
periods (0 for customers without one). Times are measured in days or in weeks (days / 7, as FHL do on CDNOW).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import ArrayLike, NDArray

from omnicrm.errors import InputError, Problem

__all__ = [
    "Unit",
    "calibration_and_holdout",
    "calibration_and_holdout_frame",
    "columns",
    "compress",
    "factorize",
    "rfm_summary",
    "rfm_summary_frame",
]

Unit = Literal["days", "weeks"]
_DAYS = {"days": 1.0, "weeks": 7.0}
_EXAMPLES = 3


def _as_date(value: dt.date | dt.datetime | str) -> ir.DateScalar:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        value = value.date()
    return ibis.date(value.isoformat())


def _check_columns(table: ir.Table, roles: dict[str, str | None]) -> None:
    """Raise InputError naming each missing column, a column given two roles, or a column of the wrong type."""
    problems: list[Problem] = []
    used: dict[str, str] = {}
    schema = table.schema()
    for role, name in roles.items():
        if name is None:
            continue
        if name in used:
            problems.append(Problem(f"column '{name}' is given as both {used[name]} and {role}", field=name))
            continue
        used[name] = role
        if name not in schema:
            have = ", ".join(schema.names)
            problems.append(Problem(f"missing column '{name}' ({role}); the table has: {have}", field=name))
            continue
        dtype = schema[name]
        if role == "timestamp" and not (dtype.is_timestamp() or dtype.is_date()):
            problems.append(Problem(f"column '{name}' must be a date or timestamp, not {dtype}", field=name))
        if role == "monetary" and not dtype.is_numeric():
            problems.append(Problem(f"column '{name}' must be numeric, not {dtype}", field=name))
    if problems:
        raise InputError("transaction table cannot be summarised", problems)


def _check_rows(table: ir.Table, customer_id: str, timestamp: str, monetary: str | None) -> None:
    """Raise InputError for null ids or timestamps and negative monetary values, quoting a few rows."""
    checks: list[tuple[str, ir.BooleanColumn, str]] = [
        (customer_id, table[customer_id].isnull(), "is null"),
        (timestamp, table[timestamp].isnull(), "is null"),
    ]
    if monetary is not None:
        checks.append((monetary, table[monetary] < 0, "is negative"))
    counts = table.aggregate(**{f"c{i}": cond.sum() for i, (_, cond, _) in enumerate(checks)}).to_pyarrow()
    problems: list[Problem] = []
    for i, (name, cond, what) in enumerate(checks):
        n = counts.column(f"c{i}")[0].as_py() or 0
        if n:
            rows = table.filter(cond).limit(_EXAMPLES).to_pyarrow().to_pylist()
            problems.append(Problem(f"{n} row(s) where '{name}' {what}, e.g. {rows}", field=name))
    if problems:
        raise InputError("transaction table has rows that cannot be summarised", problems)


def _daily(table: ir.Table, customer_id: str, timestamp: str, monetary: str | None, until: ir.DateScalar) -> ir.Table:
    """One row per customer and purchase day up to ``until`` (inclusive), monetary summed over the day."""
    ts = table[timestamp]
    day = ts.date() if ts.type().is_timestamp() else ts
    value = table[monetary].cast("float64") if monetary is not None else ibis.literal(0.0)
    rows = table.select(customer_id=table[customer_id], day=day, value=value)
    rows = rows.filter(rows.day <= until)
    return rows.group_by(["customer_id", "day"]).aggregate(value=rows.value.sum())


def _summarise(daily: ir.Table, end: ir.DateScalar, unit: Unit) -> ir.Table:
    per = _DAYS[unit]
    # each customer's first day, joined back (not a window: that would group the days twice)
    marked = daily.join(daily.group_by("customer_id").aggregate(first=daily.day.min()), "customer_id")
    repeat = marked.day > marked.first
    out = marked.group_by("customer_id").aggregate(
        n=marked.day.count(),
        first=marked.first.min(),
        last=marked.day.max(),
        repeat_value=repeat.ifelse(marked.value, 0.0).sum(),
    )
    frequency = (out.n - 1).cast("int64")
    return out.select(
        "customer_id",
        frequency=frequency,
        recency=out.last.delta(out.first, unit="day").cast("float64") / per,
        T=end.delta(out.first, unit="day").cast("float64") / per,
        monetary_value=(frequency > 0).ifelse(out.repeat_value / frequency.cast("float64"), 0.0),
    )


def rfm_summary(
    transactions: ir.Table,
    *,
    observation_end: dt.date | dt.datetime | str,
    customer_id: str = "customer_id",
    timestamp: str = "timestamp",
    monetary: str | None = "monetary",
    unit: Unit = "days",
    validate: bool = True,
) -> ir.Table:
    """Per-customer ``frequency, recency, T, monetary_value`` up to ``observation_end`` (inclusive).

    Returns an Ibis table (customer_id, frequency int64, recency, T, monetary_value float64); customers whose
    first purchase is after ``observation_end`` are left out. ``monetary=None`` gives monetary_value 0.
    """
    if unit not in _DAYS:
        raise InputError(f"unknown time unit {unit!r}; use 'days' or 'weeks'", [Problem("bad unit", field="unit")])
    _check_columns(transactions, {"customer_id": customer_id, "timestamp": timestamp, "monetary": monetary})
    if validate:
        _check_rows(transactions, customer_id, timestamp, monetary)
    end = _as_date(observation_end)
    return _summarise(_daily(transactions, customer_id, timestamp, monetary, end), end, unit)


def calibration_and_holdout(
    transactions: ir.Table,
    *,
    calibration_end: dt.date | dt.datetime | str,
    observation_end: dt.date | dt.datetime | str,
    customer_id: str = "customer_id",
    timestamp: str = "timestamp",
    monetary: str | None = "monetary",
    unit: Unit = "days",
    validate: bool = True,
) -> ir.Table:
    """Calibration summary up to ``calibration_end`` and holdout counts in (calibration_end, observation_end].

    Columns as lifetimes names them: frequency_cal, recency_cal, T_cal, monetary_value_cal, frequency_holdout
    (purchase days in the holdout), monetary_value_holdout (their mean value, 0 if none), duration_holdout.
    Only customers with a purchase in the calibration period appear.
    """
    cal = rfm_summary(
        transactions,
        observation_end=calibration_end,
        customer_id=customer_id,
        timestamp=timestamp,
        monetary=monetary,
        unit=unit,
        validate=validate,
    )
    start, end = _as_date(calibration_end), _as_date(observation_end)
    daily = _daily(transactions, customer_id, timestamp, monetary, end)
    daily = daily.filter(daily.day > start)
    hold = daily.group_by("customer_id").aggregate(
        frequency_holdout=daily.day.count().cast("int64"), monetary_value_holdout=daily.value.mean()
    )
    cal = cal.rename(frequency_cal="frequency", recency_cal="recency", T_cal="T", monetary_value_cal="monetary_value")
    joined = cal.left_join(hold, "customer_id")
    return joined.select(
        "customer_id",
        "frequency_cal",
        "recency_cal",
        "T_cal",
        "monetary_value_cal",
        frequency_holdout=joined.frequency_holdout.fill_null(0),
        monetary_value_holdout=joined.monetary_value_holdout.fill_null(0.0),
        duration_holdout=end.delta(start, unit="day").cast("float64") / _DAYS[unit],
    )


def _memtable(data: pa.Table | pd.DataFrame) -> ir.Table:
    names = list(data.column_names) if isinstance(data, pa.Table) else [str(c) for c in data.columns]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise InputError(
            "transaction table has duplicated columns",
            [Problem(f"duplicated column '{n}' ({names.count(n)} times)", field=n) for n in dups],
        )
    return ibis.memtable(data)


def _run(expr: ir.Table) -> pd.DataFrame:
    con = ibis.duckdb.connect()
    try:
        frame: pd.DataFrame = con.to_pyarrow(expr).to_pandas()
    finally:
        con.disconnect()
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def rfm_summary_frame(data: pa.Table | pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """:func:`rfm_summary` on an in-memory pyarrow/pandas table, run on DuckDB; sorted by customer_id."""
    return _run(rfm_summary(_memtable(data), **kwargs))


def calibration_and_holdout_frame(data: pa.Table | pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """:func:`calibration_and_holdout` on an in-memory pyarrow/pandas table, run on DuckDB."""
    return _run(calibration_and_holdout(_memtable(data), **kwargs))


def columns(data: Any, names: Sequence[str]) -> list[NDArray[np.float64]]:
    """Named columns of a summary table (pandas, pyarrow, Ibis or a mapping) as float arrays.

    Raises InputError naming each missing or duplicated column, and columns with negative or missing values.
    """
    if isinstance(data, ir.Table):
        data = data.select(*[n for n in names if n in data.columns]).to_pyarrow()
    have = list(data.column_names) if isinstance(data, pa.Table) else [str(c) for c in data]
    problems = [Problem(f"duplicated column '{n}'", field=n) for n in names if have.count(n) > 1]
    problems += [
        Problem(f"missing column '{n}'; the table has: {', '.join(have)}", field=n) for n in names if n not in have
    ]
    if problems:
        raise InputError("summary table cannot be used", problems)
    out = []
    for n in names:
        raw = data.column(n).to_numpy(zero_copy_only=False) if isinstance(data, pa.Table) else data[n]
        arr = np.asarray(raw, dtype=np.float64)
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            rows = np.flatnonzero(bad)[:_EXAMPLES].tolist()
            raise InputError(
                "summary table has invalid values",
                [Problem(f"{int(bad.sum())} negative or missing value(s), e.g. at rows {rows}", field=n)],
            )
        out.append(arr)
    return out


def factorize(
    *cols: NDArray[np.float64], weights: ArrayLike | None = None
) -> tuple[list[NDArray[np.intp]], list[NDArray[np.float64]], NDArray[np.float64]]:
    """The distinct rows of ``cols`` as codes into each column's sorted distinct values, with summed weights.

    Returns ``(codes, values, weights)``: row i of the result is ``[values[j][codes[j][i]] for j ...]``; rows are
    in lexicographic order. Sorts each column once, then one integer key per row (not rows of floats).
    """
    w = np.ones(len(cols[0])) if weights is None else np.asarray(weights, dtype=np.float64)
    parts = [np.unique(c, return_inverse=True) for c in cols]
    values = [v for v, _ in parts]
    sizes = [len(v) for v in values]
    if int(np.prod(sizes, dtype=object)) < 2**62:  # one int64 key per row, in the rows' lexicographic order
        key = np.zeros(len(w), dtype=np.int64)
        for (_, code), size in zip(parts, sizes, strict=True):
            key = key * size + code.ravel()
        uniq, inverse = np.unique(key, return_inverse=True)
        codes: list[NDArray[np.intp]] = []
        for size in reversed(sizes):
            uniq, code = np.divmod(uniq, size)
            codes.insert(0, code.astype(np.intp))
    else:
        rows, inverse = np.unique(np.column_stack([c for _, c in parts]), axis=0, return_inverse=True)
        codes = [rows[:, j].astype(np.intp) for j in range(len(cols))]
    counts = np.bincount(inverse.ravel(), weights=w, minlength=len(codes[0])).astype(np.float64)
    return codes, values, counts


def compress(
    *cols: NDArray[np.float64], weights: ArrayLike | None = None
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64]]:
    """Collapse identical rows into one row with a weight (CDNOW: 2,357 customers, far fewer distinct rows)."""
    codes, values, counts = factorize(*cols, weights=weights)
    return [v[c] for v, c in zip(values, codes, strict=True)], counts
