"""The demo-merchant simulator: export shapes, determinism, ground truth and realistic rates."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from omnicrm.simulate import SimulationSummary, shapes, simulate

N = 1500
SEED = 7
CSV_HEADERS = {
    shapes.TMALL_ORDERS_FILE: shapes.TMALL_ORDERS_HEADER,
    shapes.JD_ORDERS_FILE: shapes.JD_ORDERS_HEADER,
    shapes.POS_FILE: shapes.POS_HEADER,
    shapes.MEMBERS_FILE: shapes.MEMBERS_HEADER,
    shapes.WECHAT_FOLLOWERS_FILE: shapes.WECHAT_FOLLOWERS_HEADER,
}
JSONL_FILES = (shapes.EVENTS_WEB_FILE, shapes.EVENTS_MP_FILE, shapes.MESSAGES_FILE)
ALL_FILES = (*CSV_HEADERS, *JSONL_FILES, shapes.PEOPLE_FILE, shapes.IDENTIFIERS_FILE, shapes.ORDERS_TRUTH_FILE,
             shapes.MANIFEST_FILE)  # fmt: skip
BEIJING = timedelta(hours=8)
MOBILE = re.compile(r"^1[3-9]\d{9}$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    return simulate(tmp_path_factory.mktemp("demo"), N, SEED, progress=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _sql(query: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(query)
    assert relation is not None
    return relation.fetchall()


def test_summary_matches_files_and_manifest(demo: SimulationSummary) -> None:
    manifest = json.loads((demo.out_dir / shapes.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["seed"] == SEED and manifest["people"] == N
    assert manifest["start"] == "2025-01-01" and manifest["end"] == "2026-11-24"
    assert manifest["rows"] == demo.counts
    for name in CSV_HEADERS:
        assert len(_rows(demo.out_dir / name)) == demo.counts[name] > 0
    for name in JSONL_FILES:
        lines = (demo.out_dir / name).read_text(encoding="utf-8").splitlines()
        assert len(lines) == demo.counts[name] > 0
    assert demo.counts[shapes.PEOPLE_FILE] == N
    assert demo.total_rows == sum(demo.counts[f] for f in (*CSV_HEADERS, *JSONL_FILES))


@pytest.mark.parametrize("name", list(CSV_HEADERS))
def test_csv_headers_are_exact(demo: SimulationSummary, name: str) -> None:
    first = (demo.out_dir / name).read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first == ",".join(CSV_HEADERS[name])


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", 300, 11, progress=False)
    b = simulate(tmp_path / "b", 300, 11, progress=False)
    c = simulate(tmp_path / "c", 300, 12, progress=False)
    for name in ALL_FILES:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    assert (a.out_dir / shapes.TMALL_ORDERS_FILE).read_bytes() != (c.out_dir / shapes.TMALL_ORDERS_FILE).read_bytes()
    assert (a.out_dir / shapes.EVENTS_MP_FILE).read_bytes() != (c.out_dir / shapes.EVENTS_MP_FILE).read_bytes()
    # rows grow about linearly with people (no timing here: see benchmarks/simulate.py)
    d = simulate(tmp_path / "d", 1200, 11, progress=False)
    assert 2.8 < d.total_rows / a.total_rows < 5.5


def test_every_ground_truth_identifier_is_written(demo: SimulationSummary) -> None:
    ids = pq.read_table(demo.out_dir / shapes.IDENTIFIERS_FILE).to_pylist()
    assert {r["id_type"] for r in ids} >= {"tmall_nick", "jd_account", "phone", "email", "wechat_openid",
                                            "wechat_unionid", "member_card", "device_id"}  # fmt: skip
    by_file: dict[str, set[str]] = {}
    for r in ids:
        by_file.setdefault(r["source_file"], set()).add(r["value"])
    for name, values in by_file.items():
        path = demo.out_dir / name
        if name.endswith(".csv"):
            with path.open(encoding="utf-8", newline="") as fh:
                cells = {cell for row in csv.reader(fh) for cell in row}
            missing = values - cells
        else:
            text = path.read_text(encoding="utf-8")
            missing = {v for v in values if json.dumps(v, ensure_ascii=False) not in text}
        assert not missing, (name, sorted(missing)[:5])
    people = {r["person_id"] for r in ids}
    assert len(people) > 0.95 * N


def test_identity_imperfections_exist(demo: SimulationSummary) -> None:
    truth = demo.out_dir / shapes.IDENTIFIERS_FILE
    people = demo.out_dir / shapes.PEOPLE_FILE
    # family phones: a few percent of people share one phone
    (family,) = _sql(f"select avg((family_head is not null)::int) from '{people}'")[0]
    assert 0.01 < float(family) < 0.06
    shared = _sql(f"select count(*) from '{truth}' where id_type='phone' and note='clean' and shared_by > 1")
    assert shared[0][0] > 0
    notes = dict(_sql(f"select note, count(*) from '{truth}' where id_type='phone' group by 1"))
    assert notes.get("formatted", 0) > 0 and notes.get("placeholder", 0) > 0
    two_nicks = _sql(f"select count(*) from '{people}' where tmall_nick2 is not null")[0][0]
    assert two_nicks > 0
    # openids differ per app for the same person, the unionid is shared
    rows = pq.read_table(people, columns=["wechat_openid_oa", "wechat_openid_mp", "wechat_unionid"]).to_pylist()
    assert all(r["wechat_openid_oa"] != r["wechat_openid_mp"] for r in rows)
    assert all(re.fullmatch(r"o[A-Za-z0-9_-]{27}", r["wechat_openid_oa"]) for r in rows)


def test_phone_and_time_formats(demo: SimulationSummary) -> None:
    tmall = _rows(demo.out_dir / shapes.TMALL_ORDERS_FILE)
    phones = [r["联系手机"] for r in tmall]
    assert 0.55 < sum(bool(p) for p in phones) / len(phones) < 0.85
    digits = [re.sub(r"\D", "", p) for p in phones if p]
    assert all(MOBILE.match(d) or (d.startswith("86") and MOBILE.match(d[2:])) for d in digits)
    assert any(p.startswith("+86 ") or p.startswith("86 ") or " " in p for p in phones)
    for r in tmall:
        assert re.fullmatch(r"\d{19}", r["订单编号"])
        datetime.strptime(r["订单创建时间"], "%Y-%m-%d %H:%M:%S")
        assert r["订单状态"] in shapes.TMALL_STATUSES
        assert r["活动"] in shapes.TMALL_ACTIVITIES
    assert len({r["子订单编号"] for r in tmall}) == len(tmall)
    jd = _rows(demo.out_dir / shapes.JD_ORDERS_FILE)
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2} [1-9]?\d:\d{2}:\d{2}", r["下单时间"]) for r in jd)
    assert any(re.search(r" \d:", r["下单时间"]) for r in jd)  # hours below 10 have no leading zero
    assert {r["订单状态"] for r in jd} <= set(shapes.JD_STATUSES)
    pos = _rows(demo.out_dir / shapes.POS_FILE)
    assert all(datetime.fromisoformat(r["sold_at"]).utcoffset() == BEIJING for r in pos)
    assert {r["guide_id"] for r in pos} <= {f"G{i:02d}" for i in range(1, 13)}
    assert {r["store_code"] for r in pos} <= {s[0] for s in shapes.STORES}
    assert any(not r["member_card"] and not r["phone"] for r in pos)
    members = _rows(demo.out_dir / shapes.MEMBERS_FILE)
    assert all(re.fullmatch(r"M\d{8}", r["member_card"]) for r in members)
    assert {r["gender"] for r in members} <= {"男", "女", ""}
    followers = _rows(demo.out_dir / shapes.WECHAT_FOLLOWERS_FILE)
    assert 0.03 < sum(not r["unionid"] for r in followers) / len(followers) < 0.2
    assert any(r["qr_scene_str"].startswith("store_S00") for r in followers)


def test_refunds_never_exceed_paid(demo: SimulationSummary) -> None:
    out = demo.out_dir
    checks = [
        (shapes.TMALL_ORDERS_FILE, "退款金额", "实付金额", "订单付款时间", "退款时间", "%Y-%m-%d %H:%M:%S"),
        (shapes.JD_ORDERS_FILE, "退款金额", "应付金额", "付款确认时间", "退款时间", "%Y/%m/%d %H:%M:%S"),
    ]
    for name, refund, paid, paid_at, refund_at, fmt in checks:
        rows = _rows(out / name)
        assert all(float(r[refund]) <= float(r[paid]) for r in rows)
        refunded = [r for r in rows if float(r[refund]) > 0]
        assert 0.04 < len(refunded) / len(rows) < 0.16
        assert all(datetime.strptime(r[refund_at], fmt) > datetime.strptime(r[paid_at], fmt) for r in refunded)
    pos = _rows(out / shapes.POS_FILE)
    assert all(float(r["refund_amount"]) <= float(r["amount"]) for r in pos)
    assert sum(float(r["refund_amount"]) > 0 for r in pos) / len(pos) < 0.07
    dresses = [r for r in _rows(out / shapes.TMALL_ORDERS_FILE) if r["类目"] == "连衣裙"]
    others = [r for r in _rows(out / shapes.TMALL_ORDERS_FILE) if r["类目"] != "连衣裙"]
    rate = [sum(float(r["退款金额"]) > 0 for r in rs) / len(rs) for rs in (dresses, others)]
    assert rate[0] > rate[1]


def test_double_11_surge_and_promo_hunters(demo: SimulationSummary) -> None:
    orders = demo.out_dir / shapes.ORDERS_TRUTH_FILE
    people = demo.out_dir / shapes.PEOPLE_FILE
    days = (date(2026, 11, 24) - date(2025, 1, 1)).days + 1
    ((total, d11),) = _sql(
        f"""select count(*), sum(((created_at at time zone 'Asia/Shanghai')::date between '2025-11-01'
        and '2025-11-11')::int) from '{orders}' where is_first_order"""
    )
    assert d11 > 3 * total * 11 / days
    ((hunters, once),) = _sql(
        f"select count(*), sum((n_orders = 1)::int) from '{people}' where behaviour_type = 'promo_hunter'"
    )
    assert once / hunters > 0.6
    acquired = _sql(
        f"""select count(*) from '{people}' where behaviour_type = 'promo_hunter' and
        strftime(acquired_at at time zone 'Asia/Shanghai', '%m-%d') not between '10-21' and '12-12'"""
    )
    assert acquired[0][0] == 0
    types = dict(_sql(f"select behaviour_type, count(*) from '{people}' group by 1"))
    assert set(types) == {"loyal", "promo_hunter", "one_off", "drifting", "new_recent", "store_regular"}


def test_segment_messages_are_valid(demo: SimulationSummary) -> None:
    for name, page_type in ((shapes.EVENTS_WEB_FILE, "page"), (shapes.EVENTS_MP_FILE, "screen")):
        events = _jsonl(demo.out_dir / name)
        assert len({e["messageId"] for e in events}) == len(events)
        kinds: dict[str, int] = {}
        for e in events:
            assert e["userId"] or e["anonymousId"]
            assert e["type"] in ("identify", "track", page_type)
            ts = datetime.fromisoformat(str(e["timestamp"]))
            assert ts.utcoffset() == BEIJING
            context = e["context"]
            assert isinstance(context, dict) and "url" in context["page"] and context["locale"] == "zh-CN"
            if e["type"] == "track":
                kinds[str(e["event"])] = kinds.get(str(e["event"]), 0) + 1
                assert isinstance(e["properties"], dict)
            elif e["type"] == "identify":
                assert isinstance(e["traits"], dict) and e["traits"]
            else:
                assert e["name"]
        assert kinds["Product Viewed"] > 2 * kinds.get("Order Completed", 0)
        assert kinds["Products Searched"] > 0
    mp = _jsonl(demo.out_dir / shapes.EVENTS_MP_FILE)
    traits = [e["traits"] for e in mp if e["type"] == "identify"]
    assert all(t["wechat_appid"] == shapes.MP_APPID for t in traits)
    web = _jsonl(demo.out_dir / shapes.EVENTS_WEB_FILE)
    assert any("campaign" in e["context"] for e in web + mp)
    assert any(e["userId"] is None for e in mp) and any(e["userId"] for e in mp)


def test_messages_cover_channels(demo: SimulationSummary) -> None:
    messages = _jsonl(demo.out_dir / shapes.MESSAGES_FILE)
    assert len({m["message_id"] for m in messages}) == len(messages)
    assert {m["channel"] for m in messages} == set(shapes.MESSAGE_CHANNELS)
    for m in messages:
        assert m["direction"] in ("in", "out")
        assert isinstance(m["sender"], dict) and m["sender"]
        datetime.fromisoformat(str(m["sent_at"]))
        assert ("store_code" in m) == (m["channel"] == "clerk_note")
    texts = {str(m["text"]) for m in messages}
    assert texts & {"T", "退订", "TD"}
    assert any("退货" in t for t in texts) and "发货太慢了" in texts
    oa = [m for m in messages if m["channel"] == "wechat_oa" and m["direction"] == "in"]
    assert all(m["sender"]["appid"] == shapes.OA_APPID for m in oa)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        simulate(tmp_path, 0, 1, progress=False)
    with pytest.raises(ValueError):
        simulate(tmp_path, 10, 1, start=date(2025, 2, 1), end=date(2025, 1, 1), progress=False)
