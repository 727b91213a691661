"""The Splink model behind probabilistic OneID: comparisons, blocking rules and training rules.

Each comparison has short level labels ("exact", "pinyin", "typo", "diff" ...) that become the
``explain`` text of a scored pair. Which comparisons exist follows the data: a column that is empty
in the input gets no comparison (its parameters could not be estimated), and pinyin levels appear
only when there are Chinese names. The same objects run on DuckDB and on Spark: every level is
either a Splink library level or SQL both dialects understand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.comparison_level_creator import ComparisonLevelCreator

__all__ = [
    "ExtraColumn",
    "Profile",
    "Rule",
    "blocking_rules",
    "comparison_columns",
    "comparisons",
    "deterministic_rules",
    "profile",
    "training_rules",
]

ExtraKind = Literal["exact", "typo", "text"]


@dataclass(frozen=True)
class ExtraColumn:
    """A further input column to compare, e.g. a national id or a member number.

    ``kind``: "exact" (agree / differ), "typo" (exact, 1 or 2 edits apart: codes typed by hand),
    "text" (exact or Jaro-Winkler similar). ``identifier``: the value names one person, so equal
    values also generate candidate pairs and help estimate how common true matches are.
    """

    column: str
    kind: ExtraKind = "exact"
    identifier: bool = False

    @property
    def feature(self) -> str:
        """The feature column: ``x_`` + the column name as a plain SQL identifier."""
        return "x_" + re.sub(r"\W", "_", self.column.lower())


@dataclass(frozen=True)
class Profile:
    """What the prepared records hold: rows, non-null counts per feature, kinds of names."""

    rows: int
    filled: dict[str, int]
    han_names: int
    latin_names: int

    def has(self, *columns: str) -> bool:
        """Every column has at least two values (one pair could agree on it)."""
        return all(self.filled.get(c, 0) >= 2 for c in columns)


def profile(features: pa.Table) -> Profile:
    """Count non-null values per column and Chinese / Latin names, in one scan."""
    cols = [c for c in features.column_names if c not in ("record_id", "source_dataset")]
    con = duckdb.connect()
    try:
        con.register("f", features)
        counts = ", ".join(f'count("{c}")' for c in cols)
        row = con.execute(
            f"select count(*), {counts}, count(*) filter (where regexp_matches(sn, '\\p{{Han}}')), "
            f"count(*) filter (where sn is not null and not regexp_matches(sn, '\\p{{Han}}')) from f"
        ).fetchall()[0]
    finally:
        con.close()
    assert row is not None
    return Profile(rows=row[0], filled=dict(zip(cols, row[1:-2], strict=True)), han_names=row[-2], latin_names=row[-1])


def _label(level: ComparisonLevelCreator, label: str) -> ComparisonLevelCreator:
    return level.configure(label_for_charts=label)


def _jw(col: str, threshold: float) -> ComparisonLevelCreator:
    return _label(cll.JaroWinklerLevel(col, threshold), f"jw{round(threshold * 100)}")


def _custom(name: str, levels: list[ComparisonLevelCreator]) -> ComparisonCreator:
    return cl.CustomComparison(
        comparison_levels=[*levels, _label(cll.ElseLevel(), "diff")],
        output_column_name=name,
    )


def _names(p: Profile, tf: bool) -> list[ComparisonCreator]:
    out: list[ComparisonCreator] = []
    han = p.han_names > 0
    if p.has("sn_py"):
        levels = [
            cll.NullLevel("sn_py"),
            _label(cll.ExactMatchLevel("sn", term_frequency_adjustments=tf), "exact"),
        ]
        if han:
            levels.append(_label(cll.ExactMatchLevel("sn_py"), "pinyin"))
        out.append(_custom("surname", [*levels, _jw("sn_py", 0.92), _jw("sn_py", 0.8)]))
    if p.has("gn_py"):
        levels = [
            cll.NullLevel("gn_py"),
            _label(cll.ExactMatchLevel("gn", term_frequency_adjustments=tf), "exact"),
        ]
        if han:
            levels.append(_label(cll.ExactMatchLevel("gn_py"), "pinyin"))
        if p.latin_names and p.has("sn_py"):
            levels.append(_label(cll.ColumnsReversedLevel("gn_py", "sn_py", symmetrical=True), "swapped"))
        levels += [_jw("gn_py", 0.92), _jw("gn_py", 0.8)]
        if han:
            levels.append(_label(cll.ExactMatchLevel("gn_ini"), "initials"))
        out.append(_custom("given_name", levels))
    return out


def _birthday() -> ComparisonCreator:
    swapped = (
        "substr(bday_l, 1, 4) = substr(bday_r, 1, 4) and substr(bday_l, 5, 2) = substr(bday_r, 7, 2) "
        "and substr(bday_l, 7, 2) = substr(bday_r, 5, 2)"
    )
    return _custom(
        "birthday",
        [
            cll.NullLevel("bday"),
            _label(cll.ExactMatchLevel("bday"), "exact"),
            _label(cll.LevenshteinLevel("bday", 1), "typo"),
            cll.CustomLevel(swapped, "day_month_swapped"),
            cll.CustomLevel("substr(bday_l, 1, 6) = substr(bday_r, 1, 6)", "year_month"),
            _label(
                cll.AbsoluteDateDifferenceLevel("bday_d", input_is_string=False, threshold=1, metric="year"),
                "within_1y",
            ),
            _label(
                cll.AbsoluteDateDifferenceLevel("bday_d", input_is_string=False, threshold=10, metric="year"),
                "within_10y",
            ),
            cll.CustomLevel("bday_d_l is not null and bday_d_r is not null", "far"),
        ],
    )


def _place(p: Profile) -> ComparisonCreator:
    levels: list[ComparisonLevelCreator] = [cll.NullLevel("city_n")]
    if p.has("district_n"):
        levels.append(cll.CustomLevel("city_n_l = city_n_r and district_n_l = district_n_r", "district"))
    levels += [_label(cll.ExactMatchLevel("city_n"), "city"), _label(cll.JaroWinklerLevel("city_n", 0.9), "city~")]
    if p.has("province_n"):
        levels.append(_label(cll.ExactMatchLevel("province_n"), "province"))
    return _custom("place", levels)


def _extra(extra: ExtraColumn) -> ComparisonCreator:
    col = extra.feature
    levels: list[ComparisonLevelCreator] = [cll.NullLevel(col), _label(cll.ExactMatchLevel(col), "exact")]
    if extra.kind == "typo":
        levels += [_label(cll.LevenshteinLevel(col, 1), "typo"), _label(cll.LevenshteinLevel(col, 2), "typo2")]
    elif extra.kind == "text":
        levels += [_jw(col, 0.92), _jw(col, 0.8)]
    return _custom(extra.column, levels)


def comparisons(p: Profile, extras: Sequence[ExtraColumn] = (), *, tf: bool = True) -> list[ComparisonCreator]:
    """The comparisons the data supports, in explain order."""
    out = _names(p, tf)
    if p.has("bday"):
        out.append(_birthday())
    if p.has("city_n"):
        out.append(_place(p))
    if p.has("addr_n"):
        levels = [cll.NullLevel("addr_n"), _label(cll.ExactMatchLevel("addr_n"), "exact")]
        if p.has("addr_num"):
            numbers = cll.And(cll.ExactMatchLevel("addr_num"), cll.JaroWinklerLevel("addr_n", 0.7))
            levels.append(_label(numbers, "numbers"))
        out.append(_custom("address", [*levels, _jw("addr_n", 0.92), _jw("addr_n", 0.8)]))
    if p.has("postcode"):
        out.append(
            _custom(
                "postcode",
                [
                    cll.NullLevel("postcode"),
                    _label(cll.ExactMatchLevel("postcode"), "exact"),
                    _label(cll.LevenshteinLevel("postcode", 1), "typo"),
                ],
            )
        )
    if p.has("phone_n"):
        phone = [
            cll.NullLevel("phone_n"),
            _label(cll.ExactMatchLevel("phone_n"), "exact"),
            _label(cll.LevenshteinLevel("phone_n", 1), "typo"),
            _label(cll.LevenshteinLevel("phone_n", 2), "typo2"),
            _label(cll.ExactMatchLevel("phone4"), "last4"),
            _label(cll.ExactMatchLevel("phone7"), "prefix7"),
        ]
        out.append(_custom("phone", phone))
    if p.has("email"):
        email = [
            cll.NullLevel("email"),
            _label(cll.ExactMatchLevel("email"), "exact"),
            _label(cll.ExactMatchLevel("email_user"), "user"),
            _label(cll.JaroWinklerLevel("email_user", 0.88), "user~"),
        ]
        out.append(_custom("email", email))
    if p.has("gender"):
        out.append(_custom("gender", [cll.NullLevel("gender"), _label(cll.ExactMatchLevel("gender"), "exact")]))
    out += [_extra(e) for e in extras if p.has(e.feature)]
    return out


@dataclass(frozen=True)
class Rule:
    """A blocking rule: records agree on every column (or on ``sql``, Splink's l./r. syntax)."""

    columns: tuple[str, ...]
    sql: str | None = None

    def to_sql(self) -> str:
        return self.sql or " and ".join(f"l.{c} = r.{c}" for c in self.columns)


def comparison_columns(name: str) -> set[str]:
    """Feature columns a comparison reads (an extra column reads its ``ExtraColumn.feature``)."""
    return _COMPARISON_COLUMNS.get(name) or {ExtraColumn(name).feature}


_COMPARISON_COLUMNS = {
    "surname": {"sn", "sn_py"},
    "given_name": {"gn", "gn_py", "gn_ini", "sn_py"},
    "birthday": {"bday", "bday_d"},
    "place": {"city_n", "district_n", "province_n"},
    "address": {"addr_n", "addr_num"},
    "postcode": {"postcode"},
    "phone": {"phone_n", "phone4", "phone7"},
    "email": {"email", "email_user"},
    "gender": {"gender"},
}


def blocking_rules(p: Profile, extras: Sequence[ExtraColumn] = ()) -> list[Rule]:
    """Candidate pairs: records that agree on at least one of these (each keeps blocks small)."""
    candidates = [
        Rule(("sn_py", "gn_py")),
        Rule(("bday",)),
        Rule(("gn_py", "byear")),
        Rule(("sn_py", "byear", "city_n")),
        Rule(("phone4", "sn_py")),
        Rule(("phone4", "city_n")),
        Rule(("phone7", "gn_py")),
        Rule(("addr_n",)),
        Rule(("postcode", "gn_ini")),
        Rule(("postcode", "byear")),
        Rule(("email_user",)),
    ]
    rules = [rule for rule in candidates if p.has(*rule.columns)]
    if p.latin_names and p.has("sn_py", "gn_py"):
        rules.insert(1, Rule(("sn_py", "gn_py"), "l.sn_py = r.gn_py and l.gn_py = r.sn_py"))
    rules += [Rule((e.feature,)) for e in extras if e.identifier and p.has(e.feature)]
    return rules


def training_rules(p: Profile, extras: Sequence[ExtraColumn] = ()) -> list[Rule]:
    """Blocking rules for EM: names (trains everything else), then one that trains the names."""
    rules: list[Rule] = []
    if p.has("sn_py", "gn_py"):
        rules.append(Rule(("sn_py", "gn_py")))
    for cols in (("bday",), *((e.feature,) for e in extras if e.identifier), ("addr_n",), ("phone_n",), ("email",)):
        if p.has(*cols):
            rules.append(Rule(cols))
            break
    return rules


def deterministic_rules(p: Profile, extras: Sequence[ExtraColumn] = ()) -> list[Rule]:
    """Rules that almost only join true matches: to estimate how common matches are."""
    rules: list[Rule] = []
    if p.has("sn_py", "gn_py", "bday"):
        rules.append(Rule(("sn_py", "gn_py", "bday")))
    rules += [Rule((e.feature,)) for e in extras if e.identifier and p.has(e.feature)]
    return rules
