"""Comparison features for probabilistic matching, computed set-based in DuckDB.

Person records arrive with whatever a channel declared (a Chinese or Latin name, a birthday in any of
the usual spellings, a place, an address, a phone, an e-mail). Splink compares columns, so this module
turns each record into normalised columns that make the same person look the same:

- names: surname / given name split (Chinese compound surnames such as 欧阳, 司马, 诸葛, 上官 kept
  whole), toneless pinyin of each part (so 张伟 / 張偉 / 章伟 agree on sound) and pinyin initials;
- birthday: ``YYYYMMDD`` text (kept even when it is not a real date, so typos can still be compared),
  the parsed date, and the birth year;
- place: province / city / district without administrative suffixes (杭州市 → 杭州);
- address: full-width folded, lower-cased, administrative prefix and punctuation removed, building
  words unified (幢/座/号楼 → 栋), plus the run of house numbers in it;
- phone: national digits, the last 4 and the first 7 (fragments that survive a typo in the rest).

Feature columns (usable in ``MatchSettings.blocking_rules``): ``name_n``, ``sn`` / ``gn`` (surname /
given name as written), ``sn_py`` / ``gn_py`` (their pinyin), ``gn_ini``, ``bday`` (YYYYMMDD),
``bday_d`` (date), ``byear``, ``province_n``, ``city_n``, ``district_n``, ``addr_n``, ``addr_num``,
``postcode``, ``phone_n``, ``phone4``, ``phone7``, ``email``, ``email_user``, ``gender`` (m / f), and
``x_<column>`` per extra column.

A few SQL statements over the whole table; Python only converts the *unique* Chinese name parts to
pinyin (pypinyin), joined back as a lookup table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import duckdb
import pyarrow as pa
from pypinyin import lazy_pinyin

from omnicrm.errors import InputError, Problem

__all__ = [
    "COMPOUND_SURNAMES",
    "INPUT_COLUMNS",
    "SURNAME_READINGS",
    "build_features",
    "pinyin_table",
    "validate_records",
]

INPUT_COLUMNS = (
    "record_id",
    "name",
    "given_name",
    "surname",
    "birthday",
    "province",
    "city",
    "district",
    "address",
    "postcode",
    "phone",
    "email",
    "gender",
)

COMPOUND_SURNAMES = frozenset([
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "令狐", "夏侯",
    "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "澹台", "公冶", "太史", "申屠", "闻人", "单于",
    "钟离", "宗政", "濮阳", "淳于", "司空", "赫连", "拓跋", "歐陽", "司馬", "諸葛", "東方", "長孫", "軒轅", "獨孤",
    "鍾離", "聞人", "單於", "濮陽",
])  # fmt: skip

# Surnames whose reading differs from the character's most common reading (pypinyin's default).
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "單": "shan", "仇": "qiu", "解": "xie", "查": "zha", "区": "ou", "區": "ou",
    "朴": "piao", "盖": "ge", "蓋": "ge", "乐": "yue", "樂": "yue", "种": "chong", "秘": "bi", "覃": "qin",
    "翟": "zhai", "繁": "po", "员": "yun", "員": "yun", "缪": "miao", "繆": "miao", "柏": "bai", "宿": "su",
    "召": "shao", "冼": "xian", "薄": "bo", "燕": "yan", "曲": "qu", "相": "xiang", "都": "du", "折": "she",
    "隽": "juan", "占": "zhan", "尉迟": "yuchi", "万俟": "moqi", "長孫": "zhangsun", "长孙": "zhangsun",
    "单于": "chanyu", "單於": "chanyu", "令狐": "linghu", "澹台": "tantai",
}  # fmt: skip

_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_FULL_SQL, _HALF_SQL = _FULL.replace("'", "''"), _HALF.replace("'", "''")


def validate_records(table: pa.Table, extra_columns: Sequence[str] = ()) -> None:
    """Raise ``InputError`` for a missing ``record_id`` column, null or duplicate record ids."""
    names = set(table.column_names)
    problems: list[Problem] = []
    if "record_id" not in names:
        problems.append(Problem("required column is missing", field="record_id"))
    for col in extra_columns:
        if col not in names:
            problems.append(Problem("extra comparison column is missing", field=col))
    if problems:
        raise InputError("records cannot be matched: missing columns", problems)
    con = duckdb.connect()
    try:
        con.register("t", table)
        nulls = con.execute("select count(*) from t where record_id is null").fetchall()[0][0]
        dupes = con.execute(
            "select cast(record_id as varchar) as id, count(*) as n from t where record_id is not null "
            "group by 1 having count(*) > 1 order by n desc, id"
        ).fetchall()
    finally:
        con.close()
    if nulls:
        raise InputError(
            "records cannot be matched: record ids must not be empty",
            [Problem(f"{nulls} record(s) have no record id", field="record_id")],
        )
    if dupes:
        shown = [Problem(f"record id '{rid}' occurs {n} times", field="record_id") for rid, n in dupes[:5]]
        raise InputError(f"records cannot be matched: {len(dupes)} duplicate record id(s)", shown)


def pinyin_table(surnames: Iterable[str], given: Iterable[str]) -> pa.Table:
    """Toneless pinyin and initials of unique Chinese name parts: columns kind, text, py, ini."""
    kinds: list[str] = []
    texts: list[str] = []
    pys: list[str] = []
    inis: list[str] = []
    for kind, values in (("s", surnames), ("g", given)):
        for text in values:
            if kind == "s" and text in SURNAME_READINGS:
                syllables = [SURNAME_READINGS[text]]
            else:
                syllables = lazy_pinyin(text, errors="ignore")
            kinds.append(kind)
            texts.append(text)
            pys.append("".join(syllables))
            inis.append("".join(s[:1] for s in syllables))
    return pa.table(
        {"kind": kinds, "text": texts, "py": pys, "ini": inis},
        schema=pa.schema([("kind", pa.string()), ("text", pa.string()), ("py", pa.string()), ("ini", pa.string())]),
    )


def _quote(column: str) -> str:
    """SQL identifier in double quotes."""
    return '"' + column.replace('"', '""') + '"'


def _clean(expr: str) -> str:
    """SQL: full-width folded, lower-cased, whitespace collapsed, empty → null."""
    text = f"cast({expr} as varchar)"
    folded = (  # translate is slow: only where a full-width character occurs
        rf"case when regexp_matches({text}, '[\x{{FF01}}-\x{{FF5E}}\x{{3000}}]') "
        f"then translate({text}, '{_FULL_SQL}', '{_HALF_SQL}') else {text} end"
    )
    return rf"nullif(trim(regexp_replace(lower({folded}), '\s+', ' ', 'g')), '')"


def _birthday_expr(dtype: pa.DataType | None) -> str:
    """SQL: the birthday as ``YYYYMMDD`` text from a date, a timestamp or a string such as 1985-3-7."""
    if dtype is None:
        return "cast(null as varchar)"
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        return "strftime(cast(birthday as date), '%Y%m%d')"
    pattern = r"'^(\d{4})\D{0,3}(\d{1,2})\D{0,3}(\d{1,2})'"
    parts = f"regexp_extract(trim(cast(birthday as varchar)), {pattern}, ['y','m','d'])"
    return (
        f"nullif(struct_extract({parts}, 'y') || lpad(struct_extract({parts}, 'm'), 2, '0')"
        f" || lpad(struct_extract({parts}, 'd'), 2, '0'), '')"
    )


def build_features(
    table: pa.Table,
    *,
    source_column: str | None = None,
    extra_columns: Mapping[str, str] | None = None,
) -> pa.Table:
    """Normalised comparison columns, one row per record, keyed by ``record_id``.

    Missing optional input columns are treated as all-null. ``source_column`` (when given and present)
    becomes ``source_dataset``; ``extra_columns`` maps further input columns to the feature column
    names they become (cleaned text).
    """
    present = set(table.column_names)
    extras = dict(extra_columns or {})
    con = duckdb.connect()
    try:
        con.register("raw", table)
        cols = [
            "cast(record_id as varchar) as record_id",
            *(
                f"{_clean(c) if c in present else 'cast(null as varchar)'} as {c}_raw"
                for c in INPUT_COLUMNS[1:]
                if c != "birthday"
            ),
            f"{_birthday_expr(table.schema.field('birthday').type if 'birthday' in present else None)} as bday",
            (
                f"{_clean(_quote(source_column))} as source_dataset"
                if source_column and source_column in present
                else "'records' as source_dataset"
            ),
            *(f"{_clean(_quote(c))} as {_quote(feature)}" for c, feature in extras.items()),
        ]
        con.execute(f"create temp table base as select {', '.join(cols)} from raw")
        con.execute(_NAME_SQL)
        han = con.sql(
            r"select distinct 's' as kind, sn as text from names where regexp_matches(sn, '\p{Han}') "
            r"union all select distinct 'g', gn from names where regexp_matches(gn, '\p{Han}')"
        ).fetchall()
        pinyin = pinyin_table([t for k, t in han if k == "s"], [t for k, t in han if k == "g"])
        con.register("pinyin", pinyin)
        sql = _FEATURE_SQL.replace("/*ADDRESS*/", _address_ctes()).replace(
            "/*EXTRAS*/", "".join(f", n.{_quote(feature)}" for feature in extras.values())
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


_COMPOUND_SQL = "[" + ", ".join(f"'{s}'" for s in sorted(COMPOUND_SURNAMES)) + "]"

# Surname / given-name split: explicit columns win; otherwise a Chinese name is split after its
# (possibly compound) surname, and a Latin name after its last word.
_NAME_SQL = rf"""
create temp table names as
with b as (
    select *,
        nullif(regexp_replace(name_raw, '[·•.・\-_,]', ' ', 'g'), '') as nm,
        regexp_matches(coalesce(name_raw, ''), '\p{{Han}}') as nm_han
    from base
), s as (
    select *,
        case when nm_han then replace(nm, ' ', '') end as hz,
        string_split(trim(regexp_replace(coalesce(nm, ''), '\s+', ' ', 'g')), ' ') as toks
    from b
), c as (
    select *, coalesce(length(hz) > 2 and list_contains({_COMPOUND_SQL}, left(hz, 2)), false) as compound from s
)
select * exclude (nm, toks, compound),
    nullif(regexp_replace(coalesce(surname_raw,
        case when hz is not null then
            case when compound then left(hz, 2) else left(hz, 1) end
        when len(toks) > 1 then toks[-1] end), '[^\p{{L}}]', '', 'g'), '') as sn,
    nullif(regexp_replace(coalesce(given_name_raw,
        case when hz is not null then
            case when compound then substr(hz, 3) else substr(hz, 2) end
        when len(toks) > 1 then array_to_string(list_slice(toks, 1, len(toks) - 1), ' ')
        else nullif(toks[1], '') end), '[^\p{{L}}]', '', 'g'), '') as gn
from c
"""


def _address_ctes() -> str:
    """SQL CTEs ``a1``..``a6`` → ``ad``: the address without its own province / city / district at the
    start (raw and suffix-less spellings), then normalised into ``addr_n``."""
    parts = ("province_raw", "province_n", "city_raw", "city_n", "district_raw", "district_n")
    ctes, prev, col = [], "ph", "address_raw"
    for k, part in enumerate(parts, 1):
        ctes.append(
            f"a{k} as (select *, case when {part} is not null and starts_with({col}, {part}) "
            f"then substr({col}, length({part}) + 1) else {col} end as s{k} from {prev})"
        )
        prev, col = f"a{k}", f"s{k}"
    a = rf"regexp_replace(regexp_replace({col}, '^\p{{Han}}{{2,3}}(省|自治区)', ''), '^\p{{Han}}{{2,3}}市', '')"
    a = rf"regexp_replace({a}, '^\p{{Han}}{{2,4}}?[区县](\p{{Han}})', '\1')"
    a = f"regexp_replace({a}, '号楼|幢|座|栋', '栋', 'g')"
    a = rf"nullif(regexp_replace({a}, '[\s\p{{P}}\p{{S}}]|室|号|房', '', 'g'), '')"
    drop = ", ".join(f"s{k}" for k in range(1, len(parts) + 1))
    return ",\n".join(ctes) + f",\nad as (select * exclude ({drop}), {a} as addr_n from {prev})"


_FEATURE_SQL = r"""
with n as (
    select names.*,
        nullif(regexp_replace(province_raw, '(特别行政区|壮族自治区|回族自治区|维吾尔自治区|自治区|省|市)$', ''), '')
            as province_n,
        nullif(regexp_replace(city_raw, '(市|地区|自治州|盟)$', ''), '') as city_n,
        case when length(district_raw) > 2 then regexp_replace(district_raw, '(区|县|市|旗)$', '') else district_raw end
            as district_n
    from names
), ph as (
    select n.*,
        case when regexp_replace(coalesce(phone_raw, ''), '[^0-9+]', '', 'g') like '+86%'
             then substr(regexp_replace(phone_raw, '[^0-9]', '', 'g'), 3)
             else nullif(regexp_replace(coalesce(phone_raw, ''), '[^0-9]', '', 'g'), '') end as phone_n
    from n
),
/*ADDRESS*/
select
    n.record_id,
    n.source_dataset,
    coalesce(n.hz, regexp_replace(n.name_raw, '[^\p{L}]', '', 'g'), n.sn || n.gn) as name_n,
    n.sn,
    n.gn,
    coalesce(ps.py, n.sn) as sn_py,
    coalesce(pg.py, n.gn) as gn_py,
    coalesce(pg.ini, left(n.gn, 1)) as gn_ini,
    case when regexp_matches(n.bday, '^\d{8}$') and left(n.bday, 4) between '1900' and '2100'
         and n.bday <> '19000101' then n.bday end as bday,
    try_strptime(case when regexp_matches(n.bday, '^\d{8}$') then n.bday end, '%Y%m%d')::date as bday_d,
    case when regexp_matches(n.bday, '^\d{8}$') and left(n.bday, 4) between '1900' and '2100'
         and n.bday <> '19000101' then left(n.bday, 4) end as byear,
    n.province_n,
    n.city_n,
    n.district_n,
    n.addr_n,
    nullif(array_to_string(regexp_extract_all(n.address_raw, '\d+'), '-'), '') as addr_num,
    nullif(regexp_replace(n.postcode_raw, '\s', '', 'g'), '') as postcode,
    n.phone_n,
    case when length(n.phone_n) >= 7 then right(n.phone_n, 4) end as phone4,
    case when length(n.phone_n) >= 10 then left(n.phone_n, 7) end as phone7,
    case when n.email_raw like '%@%' then n.email_raw end as email,
    case when n.email_raw like '%@%' then split_part(n.email_raw, '@', 1) end as email_user,
    case when n.gender_raw in ('m', 'male', 'man', '男', '1') then 'm'
         when n.gender_raw in ('f', 'female', 'woman', '女', '2') then 'f' end as gender
    /*EXTRAS*/
from ad as n
left join pinyin ps on ps.kind = 's' and ps.text = n.sn
left join pinyin pg on pg.kind = 'g' and pg.text = n.gn
order by n.record_id
"""
