"""Probabilistic OneID: Chinese duplicates found, households kept apart, FEBRL4 linked, errors exact.

The synthetic set: ~300 people, many with 1-3 more records from other channels, each duplicate
perturbed the way real exports are (a homophone character, traditional characters, a missing or
re-formatted birthday, a phone with one wrong digit, the address written another way). Households
(spouses, parents and children) share a phone and an address but are different people.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from faker.providers.person.zh_CN import Provider as ZhPerson
from pypinyin import lazy_pinyin

from benchmarks.identity_febrl import load, person_records
from omnicrm.errors import InputError
from omnicrm.identity.matching_features import build_features
from omnicrm.identity.probabilistic import ExtraColumn, MatchSettings, match_records
from omnicrm.simulate.reference import CITIES, COMMUNITIES, STREETS

TRAD = str.maketrans(
    "张陈刘杨黄赵吴孙马罗郑谢许韩冯邓肖蒋叶苏吕丽华军红伟静强艳杰涛刚兰国辉鹏飞龙凤宁晓欢东颖阳",
    "張陳劉楊黃趙吳孫馬羅鄭謝許韓馮鄧蕭蔣葉蘇呂麗華軍紅偉靜強艷傑濤剛蘭國輝鵬飛龍鳳寧曉歡東穎陽",
)
EXTRA_HOMOPHONES = "伟玮炜薇 明铭鸣 娜纳 涛韬 强蔷 敏珉 芳方 超潮 刚钢 勇永 红宏虹 娟鹃 霞夏 梅美媚 张章 王汪 李理 陈晨"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _homophones() -> dict[str, list[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for ch in set("".join(ZhPerson.first_names)) | set(EXTRA_HOMOPHONES.replace(" ", "")):
        groups[lazy_pinyin(ch)[0]].add(ch)
    return {ch: sorted(g - {ch}) for g in groups.values() if len(g) > 1 for ch in g}


def synthetic_people(n_people: int = 300, n_households: int = 20, seed: int = 7) -> tuple[pd.DataFrame, set, set]:
    """Records, the true duplicate pairs, and the household (must-not-merge) pairs."""
    rng = np.random.default_rng(seed)
    homo = _homophones()
    surnames = list(ZhPerson.last_names)
    sw = np.array(list(ZhPerson.last_names.values()))
    singles = [c for c in ZhPerson.first_names if len(c) == 1]
    cw = np.array([c[2] for c in CITIES])

    def person(
        surname: str | None = None, born: np.datetime64 | None = None, home: dict | None = None, avoid: str = ""
    ) -> dict:
        male = bool(rng.random() < 0.5)
        given = avoid
        while lazy_pinyin(given) == lazy_pinyin(avoid):  # family members are not named alike
            given = str(rng.choice(ZhPerson.first_names_male if male else ZhPerson.first_names_female))
            if len(given) == 1 and rng.random() < 0.55:
                given += str(rng.choice(singles))
        if born is None:
            born = np.datetime64("1960-01-01") + int(rng.integers(0, 45 * 365))
        if home is None:
            province, city, _, districts = CITIES[int(rng.choice(len(CITIES), p=cw / cw.sum()))]
            home = {
                "province": province,
                "city": city,
                "district": str(rng.choice(districts)),
                "street": str(rng.choice(STREETS)),
                "no": int(rng.integers(1, 999)),
                "community": str(rng.choice(COMMUNITIES)),
                "bldg": int(rng.integers(1, 31)),
                "room": int(rng.integers(1, 26)) * 100 + int(rng.integers(1, 6)),
                "phone": f"+86{rng.choice(['138', '139', '186', '150', '177'])}{int(rng.integers(0, 10**8)):08d}",
            }
        return {
            "surname": surname or str(rng.choice(surnames, p=sw / sw.sum())),
            "given": given,
            "gender": "男" if male else "女",
            "born": born,
            **home,
        }

    def record(p: dict, rid: str, dup: bool) -> dict:
        surname, given = p["surname"], p["given"]
        born = pd.Timestamp(p["born"])
        addr = f"{p['street']}{p['no']}号{p['community']}{p['bldg']}幢{p['room']}室"
        city, district, phone, birthday = p["city"], p["district"], p["phone"], born.strftime("%Y-%m-%d")
        if dup:
            kind = rng.choice(["same", "homophone", "traditional", "surname"], p=[0.35, 0.3, 0.25, 0.1])
            if kind == "homophone":
                pos = [i for i, ch in enumerate(given) if ch in homo]
                if pos:
                    i = int(rng.choice(pos))
                    given = given[:i] + str(rng.choice(homo[given[i]])) + given[i + 1 :]
            elif kind == "traditional":
                surname, given = surname.translate(TRAD), given.translate(TRAD)
            elif kind == "surname" and surname in homo:
                surname = str(rng.choice(homo[surname]))
            bday_kind = rng.choice(["iso", "slash", "compact", "missing"], p=[0.35, 0.2, 0.15, 0.3])
            birthday = {
                "iso": birthday,
                "slash": f"{born.year}/{born.month}/{born.day}",
                "compact": born.strftime("%Y%m%d"),
                "missing": None,
            }[str(bday_kind)]
            phone_kind = rng.choice(["last", "middle", "missing"], p=[0.45, 0.2, 0.35])
            if phone_kind == "missing" and birthday is None:
                phone_kind = "last"
            if phone_kind == "missing":
                phone = None
            else:
                i = len(phone) - 1 if phone_kind == "last" else int(rng.integers(6, len(phone) - 1))
                phone = phone[:i] + str((int(phone[i]) + int(rng.integers(1, 10))) % 10) + phone[i + 1 :]
            addr_kind = rng.choice(["same", "rewritten", "missing"], p=[0.2, 0.5, 0.3])
            if addr_kind == "rewritten":
                addr = (
                    f"{p['province']}{city}{district}{p['street']}{p['no']}号 {p['community']}{p['bldg']}栋{p['room']}"
                )
                addr = addr.translate(FULL_WIDTH) if rng.random() < 0.3 else addr
            elif addr_kind == "missing":
                addr = None
            city = city.removesuffix("市") if rng.random() < 0.4 else city
            district = None if rng.random() < 0.3 else district
        return {
            "record_id": rid,
            "name": surname + given,
            "gender": p["gender"] if not dup or rng.random() < 0.7 else None,
            "birthday": birthday,
            "province": p["province"],
            "city": city,
            "district": district,
            "address": addr,
            "phone": phone,
            "email": None,
        }

    rows: list[dict] = []
    truth: set[tuple[str, str]] = set()
    households: set[tuple[str, str]] = set()
    people = [person() for _ in range(n_people)]
    for h in range(n_households):
        head = people[h]
        home = {
            k: head[k] for k in ("province", "city", "district", "street", "no", "community", "bldg", "room", "phone")
        }
        generation = bool(h % 2)  # a child or a parent (same surname), else a spouse
        offset = int(rng.integers(24 * 365, 32 * 365)) if generation else int(rng.integers(-6 * 365, 6 * 365))
        if generation and head["born"] > np.datetime64("1975-01-01"):
            offset = -offset
        surname = head["surname"] if generation else None
        people.append(person(surname=surname, born=head["born"] + offset, home=home, avoid=head["given"]))
    for i, p in enumerate(people):
        n = 1 + int(rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1])) if i < n_people else 1
        ids = [f"p{i:03d}-{k}" for k in range(n)]
        rows += [record(p, rid, k > 0) for k, rid in enumerate(ids)]
        truth |= {tuple(sorted(pair)) for pair in itertools.combinations(ids, 2)}
    for h in range(n_households):
        member = f"p{n_people + h:03d}-0"
        households |= {tuple(sorted((f"p{h:03d}-{k}", member))) for k in range(4)}
    order = rng.permutation(len(rows))
    return pd.DataFrame([rows[j] for j in order]), truth, households


@pytest.fixture(scope="module")
def chinese() -> tuple[pd.DataFrame, set, set]:
    return synthetic_people()


@pytest.fixture(scope="module")
def chinese_result(chinese):
    records, _, _ = chinese
    return match_records(records, progress=False)


def _pairs(table: pa.Table) -> set[tuple[str, str]]:
    return set(zip(table.column("record_id_l").to_pylist(), table.column("record_id_r").to_pylist(), strict=True))


def test_chinese_duplicates_are_found_without_false_merges(chinese, chinese_result) -> None:
    _, truth, _ = chinese
    merged = _pairs(chinese_result.merged)
    recall = len(merged & truth) / len(truth)
    assert recall >= 0.9, recall
    assert merged - truth == set(), sorted(merged - truth)[:5]


def test_household_sharing_phone_and_address_is_not_merged(chinese, chinese_result) -> None:
    _, _, households = chinese
    assert households, "the synthetic set has households"
    assert _pairs(chinese_result.merged) & households == set()
    held = [p for p in chinese_result.pairs.to_pylist() if (p["record_id_l"], p["record_id_r"]) in households]
    assert held, "households are scored, and held for review"
    strong = [p for p in held if p["match_probability"] >= 0.99]
    assert all(p["held"] and "phone=" in p["explain"] for p in strong)
    assert {(p["record_id_l"], p["record_id_r"]) for p in strong} <= _pairs(chinese_result.review)


def test_pairs_explain_what_agreed(chinese_result) -> None:
    pairs = chinese_result.pairs.to_pylist()
    assert pairs and all(p["record_id_l"] < p["record_id_r"] for p in pairs)
    assert chinese_result.merged.num_rows + chinese_result.review.num_rows <= chinese_result.pairs.num_rows
    strongest = max(pairs, key=lambda p: p["match_weight"])
    assert "surname=" in strongest["explain"] and "given_name=" in strongest["explain"]
    params = chinese_result.parameters.to_pylist()
    comps = {p["comparison"] for p in params}
    assert {"surname", "given_name", "birthday", "place", "address", "phone", "gender"} <= comps
    assert any(p["comparison"] == "given_name" and p["label"] == "pinyin" for p in params)
    assert 0 < chinese_result.probability_two_random_records_match < 0.01


def test_pinyin_joins_traditional_and_homophone_names() -> None:
    records = pa.table(
        {
            "record_id": ["a", "b", "c", "d", "e"],
            "name": ["张伟", "張偉", "章玮", "欧阳娜娜", "曾小贤"],
        }
    )
    f = build_features(records).to_pydict()
    assert f["sn_py"][:3] == ["zhang", "zhang", "zhang"] and f["gn_py"][:3] == ["wei", "wei", "wei"]
    assert (f["sn"][3], f["gn"][3], f["gn_ini"][3]) == ("欧阳", "娜娜", "nn")
    assert f["sn_py"][4] == "zeng"


def test_same_input_gives_same_pairs(chinese, chinese_result) -> None:
    records, _, _ = chinese
    again = match_records(records.sample(frac=1.0, random_state=3), progress=False)
    assert again.pairs.equals(chinese_result.pairs)


def _febrl(n: int) -> tuple[pd.DataFrame, int]:
    """The first ``n`` records of each FEBRL4 file as person records, and the true pairs among them."""
    a, b = load("a", n), load("b", n)
    records = person_records(a, b)
    person = records["record_id"].str.extract(r"rec-(\d+)-")[0]
    true_pairs = len(set(person[records["source"] == "a"]) & set(person[records["source"] == "b"]))
    return records, true_pairs


def test_febrl4_subset_links_with_high_f1() -> None:
    records, true_pairs = _febrl(1000)
    settings = MatchSettings(link_type="link_only", extra_columns=[ExtraColumn("soc_sec_id", "typo", identifier=True)])
    merged = match_records(records, settings=settings, progress=False).merged.to_pandas()
    person = r"rec-(\d+)-"
    tp = int((merged["record_id_l"].str.extract(person)[0] == merged["record_id_r"].str.extract(person)[0]).sum())
    precision, recall = tp / len(merged), tp / true_pairs
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.95, (precision, recall, f1)


def test_missing_record_id_column_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        match_records(pa.table({"id": ["1"], "name": ["张伟"]}), progress=False)
    assert (
        str(err.value)
        == "records cannot be matched: missing columns\n  - field 'record_id': required column is missing"
    )


def test_duplicate_record_ids_are_named() -> None:
    records = pd.DataFrame({"record_id": ["r1", "r2", "r1", "r3", "r2", "r1"], "name": ["张伟"] * 6})
    with pytest.raises(InputError) as err:
        match_records(records, progress=False)
    assert str(err.value) == (
        "records cannot be matched: 2 duplicate record id(s)\n"
        "  - field 'record_id': record id 'r1' occurs 3 times\n"
        "  - field 'record_id': record id 'r2' occurs 2 times"
    )


def test_linking_needs_a_source_column() -> None:
    with pytest.raises(InputError) as err:
        match_records(
            pa.table({"record_id": ["1", "2"]}), settings=MatchSettings(link_type="link_only"), progress=False
        )
    assert (
        str(err.value) == "link_type 'link_only' needs a source column\n  - field 'source': required column is missing"
    )


def test_extra_columns_must_be_new_columns() -> None:
    settings = MatchSettings(extra_columns={"phone": "exact", "member_no": "fuzzy"})
    with pytest.raises(InputError) as err:
        match_records(pa.table({"record_id": ["1"], "member_no": ["7"]}), settings=settings, progress=False)
    assert str(err.value) == (
        "invalid match settings\n"
        "  - field 'phone': is compared already; extra columns are for others\n"
        "  - field 'member_no': kind must be exact, typo or text"
    )


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(InputError) as err:
        match_records(pa.table({"record_id": ["1"]}), settings=MatchSettings(review_threshold=0.995), progress=False)
    assert str(err.value) == (
        "invalid match settings\n"
        "  - field 'merge_threshold': need 0 < pair_threshold <= review_threshold <= merge_threshold < 1"
    )


@pytest.mark.spark
def test_spark_backend_merges_the_same_pairs(spark, chinese) -> None:
    records, _, _ = chinese
    subset = records[records["record_id"] < "p120"]
    on_duckdb = match_records(subset, progress=False)
    on_spark = match_records(subset, backend="spark", spark=spark, progress=False)
    assert on_duckdb.merged.num_rows > 0
    assert _pairs(on_spark.merged) == _pairs(on_duckdb.merged)
