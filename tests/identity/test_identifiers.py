"""Identifier normalisation: what becomes a merge key, and the reason when something does not."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from omnicrm.identity.identifiers import names_conflict, normalise

CASES = [
    ("phone", "+86 138-0013-8001", "+8613800138001", None),
    ("phone", " 86 13800138001", "+8613800138001", None),
    ("phone", "008613800138001", "+8613800138001", None),
    ("phone", "13800000000", None, "placeholder phone"),
    ("phone", "13800138000", None, "placeholder phone"),
    ("phone", "13333333333", None, "placeholder phone"),
    ("phone", "1380013", None, "not a valid phone number"),
    ("phone", "+44 20 7946 0958", "+442079460958", None),
    ("phone", "", None, "empty"),
    ("email", " Li.Na@QQ.com ", "li.na@qq.com", None),
    ("email", "test@test.com", None, "placeholder email"),
    ("email", "nope", None, "not a valid email address"),
    ("marketplace_nick", "t**1", None, "masked value (contains *)"),
    ("marketplace_nick", " 星星爱吃鱼7175 ", "星星爱吃鱼7175", None),
    ("marketplace_nick", "null", None, "placeholder value"),
    ("member_card", "m10000002", "M10000002", None),
    ("anonymous_id", "00000000-0000-0000-0000-000000000000", None, "placeholder value"),
    ("wechat_openid", "oSbD6eLmRx_FHbdqvWKUhF3Gp2B4", "oSbD6eLmRx_FHbdqvWKUhF3Gp2B4", None),
    ("user_id", "anonymous", None, "placeholder value"),
    ("name", " 张 伟 ", "张伟", None),
]


def test_normalisation_table() -> None:
    t = ibis.memtable(pa.table({"t": [c[0] for c in CASES], "v": [c[1] for c in CASES]}))
    value, reason = normalise(t.t, t.v)
    got = ibis.duckdb.connect().to_pyarrow(t.select(value=value, reason=reason)).to_pylist()
    assert [(g["value"], g["reason"]) for g in got] == [(c[2], c[3]) for c in CASES]


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [("张伟", "张伟", False), ("张伟", "张玮", False), ("全玉平", "孙晨杰", True), ("王小明", "王大海", True),
     ("michaela neumann", "michaela neuman", False)],
)  # fmt: skip
def test_names_conflict(a: str, b: str, conflict: bool) -> None:
    assert names_conflict(a, b) is conflict
