"""Probabilistic OneID: person records that share no identifier, matched with Splink.

Deterministic resolution joins records that share a normalised key (a phone, an e-mail, an openid).
What remains are records of one person that share none: a Tmall buyer and a store member with a
phone typo, a name written in traditional characters, a different way of writing the same address.
``match_records`` scores candidate pairs with a Fellegi-Sunter model (Splink) over names (also by
pinyin), birthday, place, address, phone fragments, e-mail and gender:

- features are computed set-based (``matching_features``), comparisons follow the data
  (``matching_model``);
- u-probabilities come from Splink's random sampling (seeded, so runs repeat), m-probabilities from
  EM over the agreement patterns of several training blocking rules (``matching_training``), and
  the share of true matches from a deterministic rule where one exists;
- pairs at or above ``merge_threshold`` merge, those in [``review_threshold``, ``merge_threshold``)
  go to a review queue, and so do pairs whose records contradict each other on who they are
  (``matching_output``); every pair carries a short ``explain`` text of what agreed.

DuckDB runs it in process; ``backend="spark"`` runs the same model on a given SparkSession.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from splink import DuckDBAPI, Linker, SettingsCreator
from splink.internals.splink_dataframe import SplinkDataFrame

from omnicrm.errors import ConfigError, InputError, Problem
from omnicrm.identity.matching_features import INPUT_COLUMNS, build_features, validate_records
from omnicrm.identity.matching_model import (
    ExtraColumn,
    Profile,
    blocking_rules,
    comparison_columns,
    comparisons,
    deterministic_rules,
    profile,
    training_rules,
)
from omnicrm.identity.matching_output import (
    IDENTITY_CONFLICT,
    PAIR_SCHEMA,
    pairs_table,
    parameters_table,
)
from omnicrm.identity.matching_training import (
    estimate_m,
    fill_parameters,
    monotone_u,
    pattern_counts,
    sampled_u,
    to_pandas,
)

__all__ = ["ExtraColumn", "MatchResult", "MatchSettings", "match_records", "spark_jar_path"]

LinkType = Literal["dedupe_only", "link_only", "link_and_dedupe"]
RESERVED_NAMES = frozenset(INPUT_COLUMNS) | {"place", "source"}
_LINK_TYPES = ("dedupe_only", "link_only", "link_and_dedupe")


@dataclass(frozen=True)
class MatchSettings:
    """How to match. Thresholds are match probabilities; the rest tunes estimation and cost.

    - ``link_type``: "dedupe_only" finds duplicates within the records; "link_only" only pairs
      records of different ``source_column`` values; "link_and_dedupe" both.
    - ``pair_threshold``: the lowest probability kept in ``MatchResult.pairs``.
    - ``seed``: seed of the u-sampling; same input and seed give the same pairs.
    - ``u_max_pairs``: random pairs sampled to estimate u.
    - ``deterministic_recall``: the assumed share of true matches that agree exactly on name and
      birthday (or on an identifier extra column); with it the share of matches among all pairs is
      estimated. ``prior`` sets that share directly instead.
    - ``extra_columns``: more columns to compare (``ExtraColumn``, or a mapping column → kind).
    - ``blocking_rules``: replaces the default candidate-pair rules (Splink SQL over the feature
      columns, e.g. ``"l.sn_py = r.sn_py and l.bday = r.bday"``).
    - ``term_frequency``: weigh agreement on a common surname / given name less than on a rare one.
    - ``hold_conflicts``: a pair whose records contradict each other on who they are (given names not
      even similar in pinyin, different genders, birthdays more than a year apart) is held for review
      however high its probability, unless an identifier extra column agrees: members of one
      household share a surname, a phone and an address.
    """

    link_type: LinkType = "dedupe_only"
    source_column: str = "source"
    merge_threshold: float = 0.99
    review_threshold: float = 0.80
    pair_threshold: float = 0.5
    seed: int = 42
    u_max_pairs: float = 3e5
    deterministic_recall: float = 0.6
    prior: float | None = None
    extra_columns: Sequence[ExtraColumn] | Mapping[str, str] = ()
    blocking_rules: Sequence[str] | None = None
    term_frequency: bool = True
    hold_conflicts: bool = True

    @property
    def extras(self) -> list[ExtraColumn]:
        if isinstance(self.extra_columns, Mapping):
            return [ExtraColumn(c, kind) for c, kind in self.extra_columns.items()]  # type: ignore[arg-type]
        return list(self.extra_columns)

    def check(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        problems: list[Problem] = []
        if self.link_type not in _LINK_TYPES:
            problems.append(Problem(f"must be one of {', '.join(_LINK_TYPES)}", field="link_type"))
        if not 0 < self.pair_threshold <= self.review_threshold <= self.merge_threshold < 1:
            problems.append(
                Problem(
                    "need 0 < pair_threshold <= review_threshold <= merge_threshold < 1",
                    field="merge_threshold",
                )
            )
        if not 0 < self.deterministic_recall <= 1:
            problems.append(Problem("must be in (0, 1]", field="deterministic_recall"))
        for extra in self.extras:
            if extra.kind not in ("exact", "typo", "text"):
                problems.append(Problem("kind must be exact, typo or text", field=extra.column))
            if extra.column in RESERVED_NAMES:
                problems.append(Problem("is compared already; extra columns are for others", field=extra.column))
        if problems:
            raise InputError("invalid match settings", problems)


@dataclass
class MatchResult:
    """Scored pairs and the model that scored them.

    ``pairs``: every candidate pair with probability ≥ ``pair_threshold`` (record_id_l < record_id_r),
    ``merged``: those ≥ ``merge_threshold`` and not ``held``; ``review``: the other pairs at or above
    ``review_threshold`` (``held`` pairs: identities conflict, see ``MatchSettings.hold_conflicts``);
    ``parameters``: m / u / weight per comparison level; ``model``: Splink's JSON model.
    """

    pairs: pa.Table
    merged: pa.Table
    review: pa.Table
    parameters: pa.Table
    probability_two_random_records_match: float
    model: dict[str, Any] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)


def spark_jar_path() -> str:
    """Splink's similarity UDF jar: add it to ``spark.jars`` of a session used with backend="spark"."""
    from splink.internals.spark.jar_location import similarity_jar_location

    return similarity_jar_location()


def match_records(
    records: pa.Table | pd.DataFrame,
    *,
    settings: MatchSettings | None = None,
    backend: str = "duckdb",
    spark: Any = None,
    progress: bool = True,
) -> MatchResult:
    """Find records of the same person among ``records`` (see the module docstring)."""
    s = settings or MatchSettings()
    s.check()
    if backend not in ("duckdb", "spark"):
        raise InputError("unknown backend", [Problem("must be 'duckdb' or 'spark'", field="backend")])
    if backend == "spark" and spark is None:
        raise InputError("backend 'spark' needs a SparkSession", [Problem("pass spark=<SparkSession>", field="spark")])
    table = records if isinstance(records, pa.Table) else pa.Table.from_pandas(records, preserve_index=False)
    extras = s.extras
    validate_records(table, [e.column for e in extras])
    if s.link_type != "dedupe_only" and s.source_column not in table.column_names:
        raise InputError(
            f"link_type '{s.link_type}' needs a source column",
            [Problem("required column is missing", field=s.source_column)],
        )
    clock = _Clock(progress)
    features = build_features(
        table,
        source_column=s.source_column if s.link_type != "dedupe_only" else None,
        extra_columns={e.column: e.feature for e in extras},
    )
    prof = profile(features)
    clock.lap("features", f"{prof.rows:,} records")

    rules: list[Any] = (
        list(s.blocking_rules) if s.blocking_rules is not None else [r.to_sql() for r in blocking_rules(prof, extras)]
    )
    comps: list[Any] = comparisons(prof, extras, tf=s.term_frequency)
    if prof.rows < 2 or not comps or not rules:  # nothing to compare, or no way to find candidate pairs
        empty = PAIR_SCHEMA.empty_table()
        return MatchResult(empty, empty, empty, parameters_table({"comparisons": []}), 0.0, {}, clock.laps)
    settings_creator = SettingsCreator(
        link_type=s.link_type,
        unique_id_column_name="record_id",
        comparisons=comps,
        blocking_rules_to_generate_predictions=rules,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
    )
    with _quiet_splink(), _backend(backend, spark) as db_api:
        frames = _frames(db_api, features, s)
        model = _train(Linker(frames, settings_creator, log_level=None), frames, prof, s, clock)
        predictions = Linker(frames, model, log_level=None).inference.predict(
            threshold_match_probability=s.pair_threshold, warning_mode="never"
        )
        scored = to_pandas(predictions)
        clock.lap("predict", f"{len(scored):,} pairs")
    identifiers = frozenset(f"{e.column}={lv}" for e in extras if e.identifier for lv in ("exact", "typo", "typo2"))
    pairs = pairs_table(scored, model, IDENTITY_CONFLICT if s.hold_conflicts else frozenset(), identifiers)
    prob, held = pc.field("match_probability"), pc.field("held")
    merge = (prob >= s.merge_threshold) & ~held
    return MatchResult(
        pairs=pairs,
        merged=pairs.filter(merge),
        review=pairs.filter((prob >= s.review_threshold) & ~merge),
        parameters=parameters_table(model),
        probability_two_random_records_match=float(model["probability_two_random_records_match"]),
        model=model,
        timings=clock.laps,
    )


def _train(
    linker: Linker, frames: Sequence[SplinkDataFrame], prof: Profile, s: MatchSettings, clock: _Clock
) -> dict[str, Any]:
    """λ from deterministic rules (or ``prior``), u by seeded sampling, m by EM on several rules."""
    extras = s.extras
    prior = s.prior
    if prior is None and (rules := deterministic_rules(prof, extras)):
        with contextlib.suppress(ValueError):  # more deterministic matches than the recall allows
            linker.training.estimate_probability_two_random_records_match(
                [r.to_sql() for r in rules], recall=s.deterministic_recall
            )
            prior = linker.misc.save_model_to_json()["probability_two_random_records_match"]
    if not prior or prior <= 0 or prior >= 1:  # on small inputs the estimate can degenerate
        prior = 1.0 / max(prof.rows, 2)
    prior = min(prior, 0.5)
    linker.training.estimate_u_using_random_sampling(max_pairs=s.u_max_pairs, seed=s.seed, num_chunks=1)
    model = linker.misc.save_model_to_json()
    model["probability_two_random_records_match"] = prior  # the counts below score with it
    floor = 1.0 / s.u_max_pairs
    u = sampled_u(model, floor=floor)
    clock.lap("u sampling")
    estimates: dict[str, list[np.ndarray]] = {}
    for rule in training_rules(prof, extras):
        trained = [c for c in u if not comparison_columns(c) & set(rule.columns)]
        patterns = pattern_counts(frames, model, rule.to_sql())
        for name, values in estimate_m(patterns, u, trained).items():
            estimates.setdefault(name, []).append(values)
    clock.lap("EM")
    m = {c: np.mean(ms, axis=0) for c, ms in estimates.items()}
    return fill_parameters(model, m, monotone_u(m, u, floor), prior)


def _frames(db_api: Any, features: pa.Table, s: MatchSettings) -> list[SplinkDataFrame]:
    """One registered frame per source for linking, one frame for deduplication."""
    if s.link_type == "dedupe_only":
        return [db_api.register(features.drop_columns(["source_dataset"]))]
    sources = sorted(set(features.column("source_dataset").drop_null().to_pylist()))
    missing = features.column("source_dataset").null_count
    if missing or len(sources) < 2:
        reason = f"{missing} record(s) have no source" if missing else "linking needs at least two sources"
        raise InputError(f"link_type '{s.link_type}' cannot run", [Problem(reason, field=s.source_column)])
    src = pc.field("source_dataset")
    return [db_api.register(features.filter(src == value)) for value in sources]


@contextlib.contextmanager
def _backend(backend: str, spark: Any) -> Iterator[Any]:
    """A Splink database API on a fresh in-memory DuckDB (closed afterwards) or the given Spark."""
    if backend == "spark":
        from splink import SparkAPI

        # Splink writes intermediate tables as Parquet under the checkpoint directory; without one
        # (or without a SparkContext, as with Spark Connect) it keeps them persisted instead.
        try:
            lineage = None if spark.sparkContext.getCheckpointDir() else "persist"
        except Exception:
            lineage = "persist"
        api = SparkAPI(spark_session=spark, break_lineage_method=lineage)
        if not spark.catalog.functionExists("jaro_winkler"):
            raise ConfigError(
                "the Spark session lacks Splink's similarity functions",
                [Problem(f"add {spark_jar_path()} to spark.jars when building the session", field="spark")],
            )
        yield api
        return
    con = duckdb.connect()
    try:
        yield DuckDBAPI(connection=con)
    finally:
        con.close()


@contextlib.contextmanager
def _quiet_splink() -> Iterator[None]:
    """Splink's INFO chatter and advice warnings off for the duration of one run."""
    logger = logging.getLogger("splink")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Clock:
    """Seconds per stage; printed to stderr as they pass when progress is on."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str, note: str = "") -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._t, 3)
        self._t = now
        if self.progress:
            print(f"OneID matching: {stage:<10} {self.laps[stage]:6.2f}s {note}", file=sys.stderr)
