"""Understanding customers' messages: complaint and intent on the held-out labelled messages against the
lexicon alone, the shipped model against a fresh training, hostile input, the lexicon's negation, and every
attribute rule with a positive, a negative and a negated (or someone else's) example."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from itertools import chain
from pathlib import Path
from typing import Any

import pytest

from omnicrm.errors import InputError
from omnicrm.inbox.classifier import HELD_OUT_BUCKETS, held_out, load_examples, load_model, split, train
from omnicrm.inbox.extract import AGE_BANDS, extract, load_rules, number, parse_rules
from omnicrm.inbox.lexicon import INTENTS, baseline, load_lexicon, normalise
from omnicrm.inbox.understanding import MAX_CHARS, understand

DATA = Path(__file__).resolve().parents[2] / "src" / "omnicrm" / "inbox" / "data"
# Measured on the held-out fifth (291 messages, 82 complaints): precision 0.80, recall 0.82, intent accuracy
# 0.76; the lexicon alone: precision 0.89, recall 0.48, F1 0.62. The floors sit about one standard error
# (sqrt(0.8 * 0.2 / 82) = 0.044) below what is measured: a retraining on more data may move a few messages,
# but the model may not fall back towards the lexicon's recall.
MIN_PRECISION = 0.75
MIN_RECALL = 0.77
MIN_INTENT_ACCURACY = 0.70


def _scores(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float]:
    tp = sum(p and t for p, t in pairs)
    fp = sum(p and not t for p, t in pairs)
    fn = sum(t and not p for p, t in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# --- the labelled messages and the model ---------------------------------------------------------------------


def test_the_labelled_set_is_large_varied_and_free_of_duplicates() -> None:
    examples = load_examples()
    assert len(examples) >= 1200
    assert sum(e.lang == "zh" for e in examples) >= 600 and sum(e.lang == "en" for e in examples) >= 500
    for intent in INTENTS:
        for lang in ("zh", "en"):
            assert sum(e.intent == intent and e.lang == lang for e in examples) >= 50, (intent, lang)
    assert 300 <= sum(e.complaint for e in examples) <= 600
    assert sum(e.hard for e in examples) >= 100
    # complaints hide in every intent but praise: a late parcel, a refused refund, a price that dropped
    assert {e.intent for e in examples if e.complaint} == set(INTENTS) - {"praise"}
    keys = [normalise(e.text) for e in examples]
    assert len(keys) == len(set(keys))


def test_the_split_is_a_stable_fifth_by_hash() -> None:
    examples = load_examples()
    training, held = split(examples)
    assert len(training) + len(held) == len(examples)
    assert abs(len(held) / len(examples) - 1 / HELD_OUT_BUCKETS) < 0.03
    assert not {e.text for e in training} & {e.text for e in held}
    # by the normalised text: the same words in another case or width fall on the same side
    assert held_out("Where is my parcel?") == held_out("WHERE IS MY PARCEL？")
    assert [held_out(t) for t in ("什么时候发货", "Is it true to size?", "质量太差了")] == [
        held_out(t) for t in ("什么时候发货", "Is it true to size?", "质量太差了")
    ]


def test_complaints_on_the_held_out_messages_beat_the_lexicon() -> None:
    _, held = split(load_examples())
    ours, lexicon_only, intents = [], [], []
    for e in held:
        reading = understand(e.text, e.lang)
        ours.append((reading.complaint, e.complaint))
        intents.append(reading.intent == e.intent)
        lexicon_only.append((baseline(e.text)[0], e.complaint))
    precision, recall, f1 = _scores(ours)
    base_p, base_r, base_f1 = _scores(lexicon_only)
    accuracy = sum(intents) / len(intents)
    report = (
        f"held out: {len(held)} messages, {sum(e.complaint for e in held)} complaints; "
        f"model precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}, intent accuracy {accuracy:.3f}; "
        f"lexicon only precision {base_p:.3f} recall {base_r:.3f} F1 {base_f1:.3f}"
    )
    assert precision >= MIN_PRECISION, report
    assert recall >= MIN_RECALL, report
    assert accuracy >= MIN_INTENT_ACCURACY, report
    assert f1 > base_f1 + 0.1, report


def test_the_shipped_model_is_a_fresh_training_on_the_training_split() -> None:
    shipped = load_model()
    fresh = train(split(load_examples())[0])
    assert fresh.feature_names == shipped.feature_names
    assert fresh.intents == shipped.intents == list(INTENTS)
    assert fresh.info == shipped.info
    worst = max(
        abs(a - b)
        for a, b in zip(
            [fresh.complaint_intercept, *fresh.complaint_coef, *fresh.intent_intercept, *chain(*fresh.intent_coef)],
            [shipped.complaint_intercept, *shipped.complaint_coef, *shipped.intent_intercept,
             *chain(*shipped.intent_coef)],
            strict=True,
        )
    )  # fmt: skip
    assert worst <= 1e-4, f"the shipped model is stale: retrain with `python -m omnicrm.inbox.classifier` ({worst})"


def test_a_bad_labelled_file_is_refused_line_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "labelled.jsonl"
    rows = [
        {"text": "ok", "lang": "zh", "intent": "logistics", "complaint": False},
        {"text": "", "lang": "fr", "intent": "chat", "complaint": "yes"},
        {"text": "差评", "lang": "zh", "intent": "complaint", "complaint": False},
    ]
    bad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_examples(bad)
    found = {(p.line, p.field) for p in err.value.problems}
    assert found == {(2, "text"), (2, "lang"), (2, "intent"), (2, "complaint"), (3, "complaint"), (4, None)}


# --- reading messages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint", "intent"),
    [
        ("衣服洗了一次就严重缩水，做工也很差，我要投诉", True, "complaint"),
        ("快递一个星期了还没到，到底什么时候能送到", True, "logistics"),
        ("呵呵，真是好质量啊，才穿了半天扣子就掉了", True, "complaint"),
        ("请问这件大衣是羊毛的吗", False, "product_question"),
        ("身高160体重100斤穿什么码", False, "size_advice"),
        ("The stitching came apart after one wear, really disappointed", True, "complaint"),
        ("Could you tell me when my order will ship?", False, "logistics"),
        ("Absolutely love it, fits perfectly!", False, "praise"),
    ],
)
def test_clear_messages_not_in_the_labelled_set(text: str, complaint: bool, intent: str) -> None:
    assert normalise(text) not in {normalise(e.text) for e in load_examples()}
    reading = understand(text)
    assert (reading.complaint, reading.intent) == (complaint, intent), reading
    assert reading.priority == ("high" if complaint else "normal")
    assert 0.0 <= reading.complaint_score <= 1.0
    assert abs(sum(reading.intent_scores.values()) - 1.0) < 1e-3


def test_signals_say_why() -> None:
    reading = understand("一点都不满意，质量太差，给差评")
    assert {"negated praise: 满意", "complaint: 质量太差", "complaint: 差评"} <= set(reading.signals)
    assert understand("没有色差，一点也不起球，很满意").signals == ()


HOSTILE = [
    "",
    "   \n\t ",
    "😡😡😡",
    "🙂" * 5000,
    "?",
    "。。。！！！",
    "x" * 10_000,
    "差评" * 5_000,
    "快递 still not here 还没到 wtf!!! 😤 my order #123",
    "\x00\x01\ud800 broken \udfff 文本",
    "'; DROP TABLE manual_tags; --",
    "<script>alert('投诉')</script>",
    "\u202eevil rtl text\u202c",
    "١٢٣ مرحبا",
    "ｆｕｌｌ－ｗｉｄｔｈ　ｔｅｘｔ　质量差",
    "我" * (MAX_CHARS + 500),
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_is_read_without_error(text: str) -> None:
    started = time.perf_counter()
    reading = understand(text)
    assert reading.intent in INTENTS
    assert 0.0 <= reading.complaint_score <= 1.0
    assert reading.truncated == (len(text) > MAX_CHARS)
    for a in reading.attributes:
        assert a.quote == text[a.start : a.end]
    assert time.perf_counter() - started < 30


def test_a_text_without_words_is_other_and_no_complaint() -> None:
    for text in ("", "😡😡😡", "。。。", "?"):
        reading = understand(text)
        assert (reading.complaint, reading.complaint_score, reading.intent) == (False, 0.0, "other")


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(InputError) as err:
        understand(None)  # type: ignore[arg-type]
    assert err.value.problems[0].field == "text"
    with pytest.raises(InputError) as err:
        understand("你好", "fr")
    assert err.value.problems[0].field == "lang"


def test_language_is_detected_or_taken_as_given() -> None:
    assert understand("什么时候发货").lang == "zh"
    assert understand("When will it ship?").lang == "en"
    assert understand("这个size偏大吗").lang == "zh"
    assert understand("When will it ship?", "zh").lang == "zh"
    assert understand("🙂").lang == ""


# --- the lexicon -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category", "phrase", "negated"),
    [
        ("我不满意", "praise", "满意", True),
        ("没有色差", "complaint", "色差", True),
        ("一点色差都没有", "complaint", "色差", True),
        ("一点也不起球", "complaint", "起球", True),
        ("不过质量差", "complaint", "质量差", False),
        ("这不是虚假宣传吗", "complaint", "虚假宣传", False),
        ("收到有色差", "complaint", "色差", False),
        ("I am not happy", "praise", "happy", True),
        ("no complaints at all", "complaint", "complaint", True),
        ("it isn't broken", "complaint", "broken", True),
        ("it is broken, not happy", "complaint", "broken", False),
    ],
)
def test_negation_in_the_lexicon(text: str, category: str, phrase: str, negated: bool) -> None:
    hits = [h for h in load_lexicon().hits(normalise(text)) if h.category == category and h.phrase.startswith(phrase)]
    assert hits, load_lexicon().hits(normalise(text))
    assert hits[0].negated is negated


def test_the_lexicon_baseline() -> None:
    assert baseline("质量太差了，我要投诉") == (True, "complaint")
    assert baseline("什么时候发货") == (False, "logistics")
    assert baseline("很满意，好评") == (False, "praise")
    assert baseline("不满意") == (True, "complaint")
    assert baseline("你好") == (False, "other")


# --- attribute rules ---------------------------------------------------------------------------------------------

# rule id, positive text, what it gives, a negative text (nothing to find), a negated or someone else's statement
RULES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("child_age_zh", "宝宝4个月了，穿66还是73", {"child_age_band": "0_1", "has_infant": True},
     "宝贝4天就到了，很快", "我朋友的宝宝4个月，想送她一件"),
    ("child_age_zh", "孩子三岁了，身高100，穿多大", {"child_age_band": "3_6"}, "三岁以上适用吗", "我没有孩子，不用推荐童装"),
    ("child_age_before_zh", "给4个月的宝宝买，选哪个码", {"child_age_band": "0_1", "has_infant": True},
     "4个月的工资都花在你家了", "不是3岁的孩子穿的吧"),
    ("child_one_month_zh", "宝宝刚满月，穿59码吗", {"child_age_band": "0_1", "has_infant": True},
     "满月酒穿什么好看", "宝宝还没满月"),
    ("child_age_old_en", "My 4-month-old has sensitive skin, is this ok?", {"child_age_band": "0_1", "has_infant": True},
     "This 4-month-old coat still looks new", "Not for my 4-month-old, it's for me"),
    ("child_age_old_en", "my two-year-old keeps growing", {"child_age_band": "1_3", "has_infant": True},
     "a two-year warranty?", "My sister's two-year-old loves it"),
    ("child_age_is_en", "Do you have a kids' version? My daughter is 3", {"child_age_band": "3_6"},
     "My order is 3 days late", "My friend says her son is 3"),
    ("pregnant_zh", "我怀孕五个月了，这条裙子腰部有松紧吗", {"pregnancy": "pregnant"}, "孕妇可以穿吗", "我没怀孕，只是喜欢宽松的"),
    ("trying_zh", "在备孕，这个面料安全吗", {"pregnancy": "trying"}, "备孕期间能用的有吗", "我们没在备孕"),
    ("pregnant_en", "I'm 6 months pregnant, does the waist stretch?", {"pregnancy": "pregnant"},
     "Is it suitable for pregnant women?", "I'm not pregnant, I just like loose clothes"),
    ("trying_en", "We're trying for a baby, is this safe?", {"pregnancy": "trying"},
     "I'm trying to find my order", "My sister is trying to conceive"),
    ("pet_zh", "狗毛好清理吗，我家有只金毛", {"pet": ["dog"]}, "这件猫咪图案的卫衣还有吗", "我没有养猫，只是喜欢猫咪图案"),
    ("pet_en", "Is the fabric good with cat hair? I have two cats", {"pet": ["cat"]},
     "Do the cat-eye sunglasses come in black?", "I don't have a cat, I just like the print"),
    ("residence_zh", "我住在西湖区，附近哪个门店最近", {"district": "杭州市西湖区", "home_city": "杭州市"},
     "西湖区的门店几点关门", "我不住在西湖区了"),
    ("residence_zh", "搬到杭州滨江了，会员资料改一下", {"district": "杭州市滨江区", "home_city": "杭州市"},
     "滨江的快递几天到", "我姐姐住在滨江区"),
    ("residence_is_zh", "我在浦东，有没有近一点的门店", {"district": "上海市浦东新区", "home_city": "上海市"},
     "我在南山区上班，周末能送到吗", "我不在浦东"),
    ("residence_en", "I live in Chaoyang, Beijing, can I pick up in store?", {"district": "北京市朝阳区", "home_city": "北京市"},
     "Can I return it at the store in Xihu district?", "My parents live in Chaoyang"),
    ("residence_en", "I live in Huangpu, Shanghai", {"district": "上海市黄浦区", "home_city": "上海市"},
     "I live in Huangpu district", "I don't live in Hangzhou"),
    ("height_zh", "身高165体重110穿什么码", {"height_cm": 165.0, "weight_kg": 55.0}, "衣长65厘米吗", "身高不是165"),
    ("height_zh", "身高一米六五，体重五十公斤，推荐什么码", {"height_cm": 165.0, "weight_kg": 50.0},
     "一米多长的围巾", "给我老公买，他一米八"),
    ("height_with_weight", "我175，140斤，男生，XL够吗", {"height_cm": 175.0, "weight_kg": 70.0},
     "满175减20吗", "给我老公买，他180，75公斤"),
    ("height_en", "I'm 5'6\" and 130 lbs, S or M?", {"height_cm": 167.6, "weight_kg": 59.0},
     "The bag is 35 cm wide", "Buying for my husband: 183 cm and 85 kg"),
    ("weight_zh", "一米六，九十斤，穿S还是M", {"height_cm": 160.0, "weight_kg": 45.0}, "九十天内能退吗", "宝宝身高80，体重11kg"),
    ("weight_en", "Do you have plus sizes? I'm about 80 kg", {"weight_kg": 80.0}, "The parcel weighs 2 kg",
     "Which size for a 12 kg toddler?"),
    ("birthday_zh", "我生日是5月20号，会员生日礼怎么领", {"stated_birthday": "05-20"}, "生日礼怎么领", "我的生日不是5月20号"),
    ("birthday_zh", "会员资料里的生日能改吗，我是1992年3月15日生的", {"stated_birthday": "1992-03-15"},
     "1992年的老店了", "我妈生日是5月20号"),
    ("birthday_en", "I was born on 15 March 1992", {"stated_birthday": "1992-03-15"},
     "My birthday is next month, any voucher?", "My birthday is not on May 20"),
    ("birthday_en", "My birthday is on March 14th, how do I get the gift?", {"stated_birthday": "03-14"},
     "Open March 14 to 20?", "My wife's birthday is on March 14th"),
]  # fmt: skip


def _found(text: str) -> dict[str, Any]:
    return {e.tag: e.value for e in extract(text)}


@pytest.mark.parametrize(("rule", "text", "expected", "negative", "negated"), RULES, ids=[r[0] for r in RULES])
def test_attribute_rule(rule: str, text: str, expected: dict[str, Any], negative: str, negated: str) -> None:
    found = extract(text)
    assert {e.tag: e.value for e in found} == expected
    assert rule in {e.rule for e in found}
    for e in found:
        assert e.quote == text[e.start : e.end] and e.quote.strip()
    assert _found(negative) == {}, negative
    assert _found(negated) == {}, negated


def test_every_rule_is_tested() -> None:
    assert {r.id for r in load_rules().rules} == {r[0] for r in RULES}


@pytest.mark.parametrize(
    "text",
    [
        "我没有养猫，只是喜欢猫咪图案",
        "我们没在备孕",
        "我不住在西湖区了",
        "不是3岁的孩子穿的吧",
        "Not for my 4-month-old, it's for me",
    ],
)
def test_negation_drops_what_a_rule_matched(text: str) -> None:
    norm = unicodedata.normalize("NFKC", text).lower()
    assert any(r.pattern.search(norm) for r in load_rules().rules), "the example must match a rule's pattern"
    assert extract(text) == []


def test_a_district_in_two_cities_needs_its_city() -> None:
    assert _found("I live in Huangpu district") == {}
    assert _found("我住在黄埔区") == {"district": "广州市黄埔区", "home_city": "广州市"}
    assert _found("I'm based in Huangpu, Guangzhou") == {"district": "广州市黄埔区", "home_city": "广州市"}
    assert _found("I don't live in Hangzhou anymore, moved to Shanghai") == {"home_city": "上海市"}
    assert _found("我住在光明路") == {}


def test_several_children_and_spans_on_the_original_text() -> None:
    text = "大宝5岁，二宝8个月"
    found = extract(text)
    assert [(e.tag, e.value, e.quote) for e in found] == [
        ("child_age_band", "3_6", "大宝5岁"),
        ("child_age_band", "0_1", "二宝8个月"),
        ("has_infant", True, "二宝8个月"),
    ]
    wide = "身高１６５ｃｍ，体重５０ｋｇ"
    assert [(e.tag, e.value, e.quote) for e in extract(wide)] == [
        ("height_cm", 165.0, "身高１６５"),
        ("weight_kg", 50.0, "体重５０ｋｇ"),
    ]


def test_numbers_in_words() -> None:
    assert [number(t) for t in ("一百零五", "十八", "两", "二十四", "十", "twenty-four", "eighteen", "4", "七")] == [
        105, 18, 2, 24, 10, 24, 18, 4, 7,
    ]  # fmt: skip
    assert number("几") is None and number(None) is None
    assert AGE_BANDS == ("0_1", "1_3", "3_6", "6_12", "12_18")
    assert _found("孩子十八岁了") == {} and _found("孩子十七岁了") == {"child_age_band": "12_18"}


def test_bad_rules_are_refused_naming_rule_and_field() -> None:
    rules = (DATA / "attributes.toml").read_text(encoding="utf-8")
    districts = (DATA / "districts.toml").read_text(encoding="utf-8")
    broken = rules.replace('kind = "pet"', 'kind = "pets"', 1).replace(
        'skip_if = ["relatives"]', 'skip_if = ["cousins"]', 1
    )
    with pytest.raises(InputError) as err:
        parse_rules(broken, districts)
    fields = {p.field for p in err.value.problems}
    assert {"rules.pet_zh.kind", "rules.child_age_zh.skip_if"} <= fields
    with pytest.raises(InputError) as err:
        parse_rules(rules, "cities = 3")
    assert err.value.problems[0].field == "cities"
    assert re.search(r"not valid", str(err.value))
