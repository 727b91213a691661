"""Vectorised formatting helpers agree with plain Python formatting."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from omnicrm.simulate import vec

EPOCH = datetime(1970, 1, 1)


@given(st.lists(st.integers(0, 10**15), max_size=50))
def test_fmt_int_and_money(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    assert vec.fmt_int(arr).to_pylist() == [str(v) for v in values]
    assert vec.fmt_money(arr).to_pylist() == [f"{v // 100}.{v % 100:02d}" for v in values]


@given(st.lists(st.integers(1_600_000_000, 1_900_000_000), min_size=1, max_size=50))
def test_fmt_time_styles(seconds: list[int]) -> None:
    arr = np.array(seconds, dtype=np.int64)
    expected = [EPOCH + timedelta(seconds=s) for s in seconds]
    assert vec.fmt_time(arr, "tmall").to_pylist() == [d.strftime("%Y-%m-%d %H:%M:%S") for d in expected]
    assert vec.fmt_time(arr, "jd").to_pylist() == [f"{d:%Y/%m/%d} {d.hour}:{d:%M:%S}" for d in expected]
    assert vec.fmt_time(arr, "iso").to_pylist() == [d.strftime("%Y-%m-%dT%H:%M:%S+08:00") for d in expected]
    ms = np.arange(len(seconds)) % 1000
    iso_ms = vec.fmt_time(arr, "iso_ms", ms).to_pylist()
    assert all(datetime.fromisoformat(t).replace(tzinfo=None) == d + timedelta(milliseconds=int(m))
               for t, d, m in zip(iso_ms, expected, ms, strict=True))  # fmt: skip


def test_uuid4s_and_unique_strings() -> None:
    rng = np.random.default_rng(0)
    ids = vec.uuid4s(rng, 1000).to_pylist()
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in ids)
    repeated = pa.array(["a", "b", "a", "a", "c", "b"])
    unique = vec.make_unique(rng, repeated).to_pylist()
    assert len(set(unique)) == 6 and unique[:2] == ["a", "b"]


def test_json_str_escapes() -> None:
    out = vec.json_str(pa.array(['说"好"', "a\\b", None])).to_pylist()
    assert out == ['"说\\"好\\""', '"a\\\\b"', "null"]


def test_sampling_helpers_respect_windows() -> None:
    rng = np.random.default_rng(1)
    cw = np.concatenate([[0.0], np.cumsum(np.ones(100))])
    lo = rng.integers(0, 90, 5000)
    hi = lo + rng.integers(1, 10, 5000)
    day = vec.sample_days(rng, cw, lo, hi)
    assert np.all((day >= lo) & (day < hi))
    assert list(vec.rank_in_group(np.array([1, 1, 2, 2, 2, 5]))) == [0, 1, 0, 1, 2, 0]
