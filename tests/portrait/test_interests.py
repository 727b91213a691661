"""Text interests: keyword matching in Chinese and English, negation, aggregation per customer, the taxonomy file,
and coverage of the words the demo simulator writes."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from omnicrm.errors import InputError, Problem
from omnicrm.portrait.interests import (
    DECAY_DAYS,
    Taxonomy,
    keywords,
    load_taxonomy,
    parse_taxonomy,
    text_interests,
)
from omnicrm.simulate import texts as sim
from omnicrm.simulate.events import all_queries

T0 = dt.datetime(2026, 6, 1, 12, 0)
Row = tuple[int | None, str | None, str | None, dt.datetime | None]


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy()


def found(tax: Taxonomy, text: str) -> set[str]:
    return set(tax.match(text))


def table(rows: list[Row], at_type: pa.DataType = pa.timestamp("us")) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table(
        {
            "customer_id": pa.array(cols[0], pa.int64()),
            "text": pa.array(cols[1], pa.string()),
            "channel": pa.array(cols[2], pa.string()),
            "at": pa.array(cols[3], at_type),
        }
    )


def by_key(out: pa.Table) -> dict[tuple[int, str], dict[str, object]]:
    return {(r["customer_id"], r["interest_id"]): r for r in out.to_pylist()}


# --- matching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("喜欢钓鱼", {"fishing"}),
        ("想买一双登山鞋和冲锋衣", {"hiking"}),
        ("宝宝的奶粉快喝完了", {"parenting"}),
        ("新买的烤箱，周末做戚风", {"baking"}),
        ("家里两只猫咪，还养了一条柯基", {"cats", "dogs"}),
        ("钓鱼竿", {"fishing"}),  # a keyword that jieba keeps as one word
        ("跑步机", {"running"}),  # a keyword inside a longer word
        ("下个月去三亚度假，想学冲浪", {"travel", "swimming"}),
        ("白衬衫 女 职业", {"office_commute"}),
        # colours and garment names that contain a keyword
        ("咖啡色大衣", set()),
        ("浅咖啡色风衣", set()),
        ("面包服 短款", set()),
        ("蛋糕裙", set()),
        ("宝宝蓝卫衣", set()),
        ("抹茶绿针织衫", set()),
        ("茶几", set()),  # a single-character keyword (茶) only matches as a whole word
        ("", set()),
        ("   ", set()),
    ],
)
def test_chinese_texts(tax: Taxonomy, text: str, expected: set[str]) -> None:
    assert found(tax, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Loves HIKING and trail running", {"hiking", "running"}),
        ("bought a new fishing rod", {"fishing"}),
        ("Ｙｏｇａ every morning", {"yoga"}),  # full-width letters
        ("two cats", {"cats"}),  # plural
        ("baby blue dress", set()),
        ("brunch with friends", set()),
    ],
)
def test_english_texts(tax: Taxonomy, text: str, expected: set[str]) -> None:
    assert found(tax, text) == expected


def test_match_reports_the_longest_keyword(tax: Taxonomy) -> None:
    assert tax.match("跑步鞋 透气") == {"running": ["跑步鞋"]}
    assert tax.match("half marathon training") == {"running": ["half marathon"]}
    assert tax.match("经常出差，喜欢免烫") == {"office_commute": ["免烫", "出差"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("不喜欢跑步", set()),
        ("我不跑步", set()),
        ("讨厌钓鱼", set()),
        ("没有宝宝", set()),
        ("不太喜欢跑步，喜欢瑜伽", {"yoga"}),
        ("喜欢跑步，不喜欢瑜伽", {"running"}),
        ("不，我喜欢跑步", {"running"}),  # the negator is not right before the keyword
        ("I don't like running", set()),
        ("doesn’t like camping, loves baking", {"baking"}),
        ("not into yoga", set()),
    ],
)
def test_negation(tax: Taxonomy, text: str, expected: set[str]) -> None:
    assert found(tax, text) == expected


def test_keywords_drop_stopwords_punctuation_and_numbers() -> None:
    assert keywords("我喜欢跑步和瑜伽！买了3双跑步鞋") == ["喜欢", "跑步", "瑜伽", "买", "双", "跑步鞋"]
    assert keywords("Ｈｉｋｉｎｇ in the Alps, 2024") == ["hiking", "alps"]
    assert keywords("咖啡色大衣") == ["咖啡色", "大衣"]
    assert keywords("。。。 123") == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jieba 0.42 has invalid escapes in its regexes
def test_global_jieba_is_left_alone(tax: Taxonomy) -> None:
    import jieba

    assert tax.match("跑步鞋") == {"running": ["跑步鞋"]}
    assert jieba.lcut("跑步鞋") == ["跑步", "鞋"]


# --- per customer ---------------------------------------------------------------------------------


def test_repeated_texts_count_per_text() -> None:
    rows: list[Row] = [
        (1, "跑步鞋 透气", "search", T0 - dt.timedelta(days=3)),
        (1, "跑步鞋 透气", "search", T0 - dt.timedelta(days=2)),
        (1, "跑步鞋 透气", "search", T0 - dt.timedelta(days=1)),
        (1, "喜欢跑步", "clerk_note", T0),
        (1, "登山鞋 冲锋衣", "search", T0),  # two keywords, one text: one hit
        (2, "碎花连衣裙 夏", "search", T0),
    ]
    out = by_key(text_interests(table(rows)))
    assert set(out) == {(1, "running"), (1, "hiking")}
    assert out[1, "running"]["hits"] == 4
    assert out[1, "running"]["keywords"] == ["跑步", "跑步鞋"]
    assert out[1, "running"]["channels"] == ["clerk_note", "search"]
    assert out[1, "running"]["last_at"] == T0
    assert out[1, "hiking"]["hits"] == 1
    assert out[1, "hiking"]["keywords"] == ["冲锋衣", "登山鞋"]


def test_score_decays_with_age() -> None:
    rows: list[Row] = [
        (1, "喜欢瑜伽", "clerk_note", T0),
        (2, "喜欢瑜伽", "clerk_note", T0 - dt.timedelta(days=90)),
        (3, "喜欢瑜伽", "clerk_note", T0 - dt.timedelta(days=30)),
        (3, "瑜伽垫", "search", T0 - dt.timedelta(days=400)),
        (4, "新款", "search", T0 + dt.timedelta(days=10)),  # no interest, but the latest time in the input
    ]
    out = by_key(text_interests(table(rows)))
    age = {1: 10, 2: 100}
    for cid, days in age.items():
        assert out[cid, "yoga"]["score"] == pytest.approx(math.exp(-days / DECAY_DAYS))
    assert out[3, "yoga"]["score"] == pytest.approx(math.exp(-40 / DECAY_DAYS) + math.exp(-410 / DECAY_DAYS))
    assert out[1, "yoga"]["score"] > out[3, "yoga"]["score"] > out[2, "yoga"]["score"]


def test_as_of_leaves_out_later_rows() -> None:
    rows: list[Row] = [
        (1, "喜欢钓鱼", "clerk_note", T0 - dt.timedelta(days=10)),
        (1, "钓竿", "search", T0 + dt.timedelta(days=1)),
    ]
    out = text_interests(table(rows), as_of=T0).to_pylist()
    assert len(out) == 1
    assert out[0]["hits"] == 1
    assert out[0]["keywords"] == ["钓鱼"]
    assert out[0]["score"] == pytest.approx(math.exp(-10 / DECAY_DAYS))


def test_timezone_is_kept() -> None:
    utc = dt.UTC
    at_type = pa.timestamp("ms", tz="Asia/Shanghai")
    rows: list[Row] = [(7, "露营", "wechat_oa", T0.replace(tzinfo=utc))]
    out = text_interests(table(rows, at_type), as_of=(T0 + dt.timedelta(days=45)).replace(tzinfo=utc))
    assert out.schema.field("last_at").type == at_type
    assert out["last_at"].to_pylist()[0] == T0.replace(tzinfo=utc)
    assert out["score"].to_pylist() == [pytest.approx(math.exp(-0.5))]


def test_null_and_empty_texts_are_ignored() -> None:
    rows: list[Row] = [
        (1, None, "search", T0),
        (1, "", "search", T0),
        (1, "  ", "clerk_note", T0),
        (None, "喜欢摄影", "clerk_note", T0),
        (2, "喜欢摄影", None, None),
        (3, "喜欢摄影", None, T0),
    ]
    out = text_interests(table(rows)).to_pylist()
    assert [(r["customer_id"], r["interest_id"], r["hits"], r["channels"]) for r in out] == [(3, "photography", 1, [])]


@pytest.mark.parametrize("rows", [[], [(1, "碎花连衣裙", "search", T0)], [(1, None, "search", T0)]])
def test_no_interests_give_an_empty_table_with_the_schema(rows: list[Row]) -> None:
    out = text_interests(table(rows, pa.timestamp("ns")))
    assert out.num_rows == 0
    assert out.schema == pa.schema(
        [
            ("customer_id", pa.int64()),
            ("interest_id", pa.string()),
            ("hits", pa.int64()),
            ("score", pa.float64()),
            ("keywords", pa.list_(pa.string())),
            ("channels", pa.list_(pa.string())),
            ("last_at", pa.timestamp("ns")),
        ]
    )


def test_hobbies_are_interests_of_clerk_notes() -> None:
    rows: list[Row] = [(1, "喜欢烘焙", "clerk_note", T0), (1, "烤箱", "search", T0), (2, "烤箱", "search", T0)]
    t = table(rows)
    hobbies = text_interests(t.filter(pa.compute.equal(t["channel"], "clerk_note")))
    assert [(r["customer_id"], r["interest_id"], r["hits"]) for r in hobbies.to_pylist()] == [(1, "baking", 1)]


def test_input_errors_name_each_column() -> None:
    bad = pa.table({"customer_id": pa.array(["a"]), "text": pa.array(["x"]), "at": pa.array([dt.date(2026, 1, 1)])})
    with pytest.raises(InputError) as err:
        text_interests(bad)
    assert err.value.message == "texts cannot be read for interests"
    assert err.value.problems == [
        Problem("column 'customer_id' must be an integer, not string", field="customer_id"),
        Problem("missing column 'channel' (a string); the table has: customer_id, text, at", field="channel"),
        Problem("column 'at' must be a timestamp, not date32[day]", field="at"),
    ]


def test_a_million_rows_with_few_distinct_texts_is_quick(tax: Taxonomy) -> None:
    rng = np.random.default_rng(7)
    base = [*all_queries(), *sim.CLERK_FIXED, *("喜欢" + h for h in sim.HOBBIES)]
    distinct = np.array([t if i < len(base) else f"{base[i % len(base)]} {i}" for i, t in enumerate(base * 80)][:5000])
    n = 1_000_000
    t = pa.table(
        {
            "customer_id": pa.array(rng.integers(0, 100_000, n)),
            "text": pa.array(distinct[rng.integers(0, len(distinct), n)].tolist(), pa.string()),
            "channel": pa.array(np.array(["search", "clerk_note"])[rng.integers(0, 2, n)].tolist()),
            "at": pa.array(np.datetime64("2026-01-01") + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")),
        }
    )
    tax.match("")  # the tokenizer is built once per taxonomy; time the work, not jieba's start-up
    start = time.perf_counter()
    out = text_interests(t, tax)
    elapsed = time.perf_counter() - start
    assert out.num_rows > 10_000
    assert sum(out["hits"].to_pylist()) > 100_000
    assert elapsed < 10, f"{elapsed:.1f} s for 1M rows"


# --- the simulator's words ------------------------------------------------------------------------

CLERK_FIXED_INTERESTS = {
    "喜欢徒步": {"hiking"},
    "不喜欢亮色": set(),
    "对面料敏感，喜欢纯棉": set(),
    "下个月生日": set(),
    "在备孕": {"pregnancy"},
    "经常出差，喜欢免烫": {"office_commute"},
    "喜欢跑步": {"running"},
    "想要羽绒服到货通知": set(),
    "和闺蜜一起来的": set(),
    "偏好宽松版型": set(),
    "老顾客，介绍了朋友来": set(),
}
QUERY_INTERESTS = {
    "跑步鞋 透气": {"running"},
    "白衬衫 女 职业": {"office_commute"},
    "衬衫 免烫": {"office_commute"},
    "西装外套": {"office_commute"},
    "包臀裙 职业": {"office_commute"},
    "双肩包 通勤": {"office_commute"},
}
HOBBY_INTERESTS = {
    "徒步": "hiking",
    "瑜伽": "yoga",
    "露营": "camping",
    "跑步": "running",
    "烘焙": "baking",
    "摄影": "photography",
    "旅行": "travel",
    "跳舞": "dance",
}


@pytest.mark.parametrize("hobby", sim.HOBBIES)
def test_every_simulated_hobby_note_maps_to_an_interest(tax: Taxonomy, hobby: str) -> None:
    """The simulator writes 喜欢<hobby> (messages._clerk_notes); each one is an interest."""
    assert found(tax, "喜欢" + hobby) == {HOBBY_INTERESTS[hobby]}


def test_simulated_clerk_notes(tax: Taxonomy) -> None:
    assert set(sim.CLERK_FIXED) == set(CLERK_FIXED_INTERESTS), "a new clerk note: say which interests it shows"
    assert {note: found(tax, note) for note in sim.CLERK_FIXED} == CLERK_FIXED_INTERESTS
    for months in (2, 23):
        assert found(tax, f"顾客说宝宝{months}个月大") == {"parenting"}


def test_simulated_search_queries(tax: Taxonomy) -> None:
    """Queries with an activity or occasion map to it; garment, colour and promotion words map to nothing."""
    queries = all_queries()
    assert set(QUERY_INTERESTS) <= set(queries)
    assert {q: found(tax, q) for q in queries} == {q: QUERY_INTERESTS.get(q, set()) for q in queries}


def test_simulated_service_texts_show_no_interest(tax: Taxonomy) -> None:
    texts = [
        *sim.PRESALE_QUESTIONS, *sim.PRESALE_ANSWERS, *sim.COMPLAINTS, *sim.APOLOGIES, *sim.OA_MESSAGES,
        *sim.OA_REPLIES, *sim.SMS_CAMPAIGNS, *sim.SMS_REPLIES, *sim.EMAIL_QUESTIONS, *sim.EMAIL_REPLIES,
    ]  # fmt: skip
    assert {t: tax.match(t) for t in texts if tax.match(t)} == {}


# --- the taxonomy file ----------------------------------------------------------------------------


def test_shipped_taxonomy(tax: Taxonomy) -> None:
    ids = [it.id for it in tax.interests]
    assert 20 <= len(ids) <= 35
    assert len(set(ids)) == len(ids)
    assert {it.parent for it in tax.interests} == set(tax.groups)
    assert all(it.keywords_zh and it.keywords_en for it in tax.interests)
    assert tax.interest("fishing").name_zh == "钓鱼"
    assert "钓竿" in tax.interest("fishing").keywords_zh
    assert load_taxonomy() is tax


GOOD = """
[groups]
sport = { name_zh = "运动", name_en = "Sport" }

[[interests]]
id = "running"
name_zh = "跑步"
name_en = "Running"
parent = "sport"
keywords_zh = ["跑步"]
keywords_en = ["running"]
"""


def test_bad_taxonomy_lists_every_problem() -> None:
    bad = (
        GOOD
        + """
[[interests]]
id = "running"
name_zh = "慢跑"
name_en = "Jogging"
parent = "sports"
keywords_zh = []
keywords_en = ["jogging", " "]

[[interests]]
id = "Yoga"
name_zh = "瑜伽"
name_en = "Yoga"
parent = "sport"
keywords_zh = ["瑜伽"]
keywords_en = ["yoga"]
"""
    )
    with pytest.raises(InputError) as err:
        parse_taxonomy(bad, source="bad.toml")
    assert err.value.message == "interest taxonomy bad.toml is not valid"
    assert err.value.problems == [
        Problem("duplicate id 'running': entries 0 and 1 (counting from 0) use it", field="interests.running.id"),
        Problem(
            "interest 'running' has unknown parent 'sports' — did you mean 'sport'? (groups: sport)",
            field="interests.running.parent",
        ),
        Problem(
            "interest 'running' has no keywords_zh; list at least one word or phrase",
            field="interests.running.keywords_zh",
        ),
        Problem("keyword 1 of interest 'running' is empty", field="interests.running.keywords_en"),
        Problem("id 'Yoga' must be ascii snake_case (a-z, 0-9, _)", field="interests.Yoga.id"),
    ]


def test_taxonomy_shape_errors_name_the_interest_and_field() -> None:
    bad = GOOD.replace('name_en = "Running"', 'colour = "red"')
    with pytest.raises(InputError) as err:
        parse_taxonomy(bad)
    assert [(p.field, p.reason) for p in err.value.problems] == [
        ("interests.running.name_en", "Field required"),
        ("interests.running.colour", "Extra inputs are not permitted"),
    ]


def test_taxonomy_that_is_not_toml() -> None:
    with pytest.raises(InputError) as err:
        parse_taxonomy("[groups\n")
    assert err.value.problems[0].reason.startswith("not valid TOML: ")


def test_load_taxonomy_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "interests.toml"
    path.write_text(GOOD, encoding="utf-8")
    tax = load_taxonomy(path)
    assert [it.id for it in tax.interests] == ["running"]
    assert tax.match("喜欢跑步，不喜欢瑜伽") == {"running": ["跑步"]}
    with pytest.raises(InputError) as err:
        load_taxonomy(tmp_path / "missing.toml")
    assert err.value.problems[0].field == "path"
