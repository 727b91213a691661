"""Deterministic resolution on hand-made records: merges, merge protection and operator links."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omnicrm.identity.resolve import Resolution, resolve


def occ(*records: tuple[str, list[tuple[str, str]]]) -> pa.Table:
    """Occurrences from (record_key, [(id_type, key), ...]); scope is the middle part of the key."""
    rows = [(rk, t, key.split(":")[1], key) for rk, ids in records for t, key in ids]
    return pa.table(
        {
            "record_key": [r[0] for r in rows],
            "id_type": [r[1] for r in rows],
            "scope": [r[2] for r in rows],
            "key": [r[3] for r in rows],
        }
    )


def groups(res: Resolution) -> set[frozenset[str]]:
    out: dict[int, set[str]] = {}
    for key, comp in zip(res.record_keys.to_pylist(), res.record_comp.tolist(), strict=True):
        out.setdefault(comp, set()).add(key)
    return {frozenset(v) for v in out.values()}


def refusal(res: Resolution, key: str) -> str | None:
    return res.key_refusal[res.keys.to_pylist().index(key)]


PHONE = ("phone", "phone::+8613912345678")


def test_records_sharing_a_key_merge_transitively() -> None:
    res = resolve(
        occ(
            ("o:tmall:1", [("marketplace_nick", "marketplace_nick:taobao:lily"), PHONE]),
            ("p:crm:M1", [("member_card", "member_card::M1"), PHONE]),
            ("o:pos:9", [("member_card", "member_card::M1")]),
            ("o:jd:5", [("marketplace_nick", "marketplace_nick:jd:lily")]),
        )
    )
    assert groups(res) == {frozenset({"o:tmall:1", "p:crm:M1", "o:pos:9"}), frozenset({"o:jd:5"})}


def test_a_family_phone_does_not_merge_two_members() -> None:
    res = resolve(
        occ(
            ("p:crm:M1", [("member_card", "member_card::M1"), PHONE]),
            ("p:crm:M2", [("member_card", "member_card::M2"), PHONE]),
        )
    )
    assert len(groups(res)) == 2
    assert refusal(res, PHONE[1]) == "would join 2 customers beyond a per-customer identifier limit"


def test_a_family_phone_does_not_merge_two_named_people() -> None:
    res = resolve(
        occ(
            ("o:tmall:1", [("marketplace_nick", "marketplace_nick:taobao:a"), PHONE, ("name", "name::全玉平")]),
            ("o:jd:2", [("marketplace_nick", "marketplace_nick:jd:b"), PHONE, ("name", "name::孙晨杰")]),
        )
    )
    assert len(groups(res)) == 2


def test_a_typo_in_the_name_does_not_stop_a_merge() -> None:
    res = resolve(
        occ(
            ("o:tmall:1", [("marketplace_nick", "marketplace_nick:taobao:a"), PHONE, ("name", "name::张伟")]),
            ("o:jd:2", [("marketplace_nick", "marketplace_nick:jd:b"), PHONE, ("name", "name::张玮")]),
        )
    )
    assert len(groups(res)) == 1


def test_openids_of_two_apps_join_only_through_a_unionid() -> None:
    oa = ("wechat_openid", "wechat_openid:wx_oa:o1")
    mp = ("wechat_openid", "wechat_openid:wx_mp:o2")
    apart = resolve(occ(("p:wechat-oa:o1", [oa]), ("e:mp:x", [mp])))
    assert len(groups(apart)) == 2
    union = ("wechat_unionid", "wechat_unionid::u1")
    joined = resolve(occ(("p:wechat-oa:o1", [oa, union]), ("e:mp:x", [mp, union])))
    assert len(groups(joined)) == 1


def test_one_customer_never_gets_two_openids_of_one_app() -> None:
    union = ("wechat_unionid", "wechat_unionid::u1")
    res = resolve(
        occ(
            ("p:wechat-oa:o1", [("wechat_openid", "wechat_openid:wx_oa:o1"), union]),
            ("p:wechat-oa:o2", [("wechat_openid", "wechat_openid:wx_oa:o2"), union]),
        )
    )
    assert len(groups(res)) == 2


def test_operator_links() -> None:
    records = occ(
        ("p:crm:M1", [("member_card", "member_card::M1")]),
        ("o:tmall:1", [("marketplace_nick", "marketplace_nick:taobao:lily"), ("member_card", "member_card::M1")]),
        ("p:crm:M2", [("member_card", "member_card::M2")]),
    )
    joined = resolve(records, must_link=[("member_card::M1", "member_card::M2")])
    assert len(groups(joined)) == 1
    split = resolve(records, cannot_link=[("member_card::M1", "marketplace_nick:taobao:lily")])
    # the order carries both and stays one unit, but it no longer joins the member's own record
    assert groups(split) == {frozenset({"p:crm:M1"}), frozenset({"o:tmall:1"}), frozenset({"p:crm:M2"})}


def test_cannot_link_stops_a_merge_through_a_key() -> None:
    records = occ(
        ("p:crm:M1", [("member_card", "member_card::M1"), PHONE]),
        ("o:tmall:1", [("marketplace_nick", "marketplace_nick:taobao:lily"), PHONE]),
    )
    assert len(groups(resolve(records))) == 1
    split = resolve(records, cannot_link=[("member_card::M1", "marketplace_nick:taobao:lily")])
    assert len(groups(split)) == 2


def test_empty_input() -> None:
    res = resolve(occ())
    assert len(res.record_keys) == 0 and res.stats["customers"] == 0
    assert np.asarray(res.record_comp).size == 0
