"""``omnicrm refresh`` for the portrait: every tag of every customer, as a new snapshot.

Built-in tags come from the facts through the engine (DuckDB or Spark, same Ibis code); predicted value and text
interests are computed in Python over per-customer arrays and joined in as bases; manual tags come from the
state store (following identity redirects, so a value set on a customer that later merged stays with the
person); rule tags are evaluated last, over all of these. The snapshot holds the tags (wide: one column per
tag), the bases that explain them, the catalogue as it was used, and the refresh's stats.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from omnicrm.errors import InputError, NotFound
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.portrait.propensity import PropensityModel, score_current, train_propensity
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.portrait.tags.compute import compute_tags
from omnicrm.portrait.tags.custom import load_custom, manual_values
from omnicrm.portrait.tags.model import TagDefinition, arrow_type
from omnicrm.portrait.tags.rules import compile_rule
from omnicrm.portrait.texts import interest_basis
from omnicrm.portrait.value import value_scores
from omnicrm.store.derived import CUSTOMER_ROW_GROUP, DerivedStore
from omnicrm.store.engine import Engine, duckdb_backend
from omnicrm.store.state import StateStore

__all__ = ["AREA", "PortraitRefresh", "catalogue", "known_types", "refresh_portrait"]

AREA = "portrait"
PROPENSITY_REFIT = dt.timedelta(days=7)
Say = Callable[[str], None]


@dataclass
class PortraitRefresh:
    snapshot: Path
    customers: int
    tags: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def catalogue(state: StateStore) -> list[TagDefinition]:
    """Built-in tags, then the merchant's rule and manual tags."""
    return [*BUILTIN, *load_custom(state)]


def known_types(definitions: Sequence[TagDefinition]) -> dict[str, str]:
    return {d.id: d.value_type for d in definitions}


def _previous_stats(derived: DerivedStore) -> dict[str, Any]:
    previous = derived.current(AREA)
    if previous is None or not (previous / "stats.json").exists():
        return {}
    return dict(json.loads((previous / "stats.json").read_text(encoding="utf-8")))


def _redirected(manual: pa.Table, redirects: Path) -> pa.Table:
    """Manual values keyed by the customer id in force (a value set before a merge follows the person)."""
    con = duckdb.connect()
    con.register("manual", manual)
    value = manual.column_names[1]
    return con.sql(
        f"""
        SELECT coalesce(r.customer_id, m.customer_id) AS customer_id, arg_max(m."{value}", m.customer_id) AS "{value}"
        FROM manual m LEFT JOIN read_parquet('{redirects}') r ON r.old_id = m.customer_id
        GROUP BY ALL
        """
    ).to_arrow_table()


def _add_custom(
    tags: pa.Table, custom: Sequence[TagDefinition], manual: dict[str, pa.Table], redirects: Path
) -> pa.Table:
    """Manual tag columns, then rule tag columns (rules read built-in and manual tags, and earlier rule tags),
    as one expression run once."""
    if not custom:
        return tags
    con = duckdb_backend()
    table = con.create_table("wide", tags)
    types = {name: _type_of(tags.schema.field(name).type) for name in tags.column_names if name != "customer_id"}
    for d in custom:
        if d.origin != "manual":
            continue
        values = _redirected(manual[d.id], redirects) if manual[d.id].num_rows else manual[d.id]
        table = table.left_join(con.create_table(f"manual_{d.id}", values), "customer_id").drop("customer_id_right")
        types[d.id] = d.value_type
    for d in custom:
        if d.origin != "rule":
            continue
        value = compile_rule(d.rule, d.value_type, table, types, where=f"tag {d.id}: rule")
        table = table.mutate(**{d.id: value.cast(arrow_type(d.value_type))})
        types[d.id] = d.value_type
    out = table.order_by("customer_id").to_pyarrow()
    order = [*tags.column_names, *(d.id for d in custom)]
    return out.select(order)


def _type_of(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_list(t):
        return "list"
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return "number"
    return "category"


def _propensity(
    inputs: PortraitInputs,
    identifiers: Any,
    tags: pa.Table,
    derived: DerivedStore,
    previous: dict[str, Any] | None,
    full: bool,
    say: Say,
) -> tuple[pa.Table, dict[str, Any]]:
    """The propensity columns: the model is refitted weekly (or with ``full``), else loaded from the cache."""
    folder = derived.cache(AREA, "propensity")
    fitted_at = dt.datetime.fromisoformat(previous["fitted_at"]) if previous and previous.get("fitted_at") else None
    info: dict[str, Any]
    model: PropensityModel | None = None
    if (
        not full
        and fitted_at is not None
        and inputs.as_of - fitted_at < PROPENSITY_REFIT
        and (folder / "model.txt").exists()
    ):
        model = PropensityModel.load(folder)
        info = {**(previous or {}), "reused": True}
    else:
        say("repeat-purchase propensity (LightGBM, trained on past promotion cohorts)…")
        try:
            model = train_propensity(inputs, identifiers=identifiers, say=say)
            model.save(folder)
            info = {"fitted_at": inputs.as_of.isoformat(), "auc_holdout": model.auc_holdout,
                    "baseline_auc_holdout": model.baseline_auc_holdout, "reused": False}  # fmt: skip
        except InputError as exc:
            info = {"skipped": str(exc).splitlines()[0]}
    n = tags.num_rows
    score = pa.nulls(n, pa.float64())
    reasons = pa.nulls(n, pa.list_(pa.string()))
    if model is not None:
        say("scoring the latest promotion's new buyers…")
        scored = score_current(model, inputs, tags)
        score, reasons = scored["repeat_propensity"].cast(pa.float64()), scored["propensity_reasons"]
    empty = pa.scalar([], pa.list_(pa.string()))
    reasons = pc.if_else(pc.is_null(reasons), empty, reasons)
    tags = tags.append_column("repeat_propensity", score).append_column("propensity_reasons", reasons)
    return tags, info


def refresh_portrait(
    state: StateStore,
    engine: Engine,
    derived: DerivedStore,
    *,
    as_of: dt.datetime | None = None,
    full: bool = False,
    say: Say = lambda _msg: None,
) -> PortraitRefresh:
    """Compute every tag of every customer and publish the snapshot."""
    started = time.perf_counter()
    identity = derived.current("identity")
    if identity is None:
        raise NotFound("no identity snapshot yet: run `omnicrm refresh` so OneID runs before the portrait")
    # the facts joined to customers, and the orders, computed once for every basis, model and past portrait
    inputs = PortraitInputs.from_snapshot(engine, identity, as_of).materialised()
    previous = _previous_stats(derived)
    say("predicted value (BG/NBD, Gamma-Gamma)…")
    value = value_scores(inputs, previous.get("value"), refit=full)
    say("interests from searches, chats and notes…")
    interests = interest_basis(inputs)
    identifiers = engine.parquet([identity / "identifiers.parquet"], "identifiers")
    result = compute_tags(inputs, BUILTIN, extra_bases=[value.table, interests], identifiers=identifiers, say=say)
    tags, propensity = _propensity(inputs, identifiers, result.tags, derived, previous.get("propensity"), full, say)
    custom = load_custom(state)
    tags = _add_custom(tags, custom, manual_values(state, custom), identity / "redirects.parquet")
    say("writing the snapshot…")
    snapshot = derived.new_snapshot(AREA)
    computed_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    stats = {
        **result.stats,
        "as_of": inputs.as_of.isoformat(),
        "computed_at": computed_at,
        "identity_snapshot": identity.name,
        "value": value.info,
        "propensity": propensity,
        "tags": len(BUILTIN) + len(custom),
    }
    # by customer in small row groups: one customer's tags and reasons (the 360) read one row group, not all
    for table, name in ((tags, "tags"), (result.basis, "basis")):
        by_customer = table.sort_by("customer_id")
        pq.write_table(by_customer, snapshot / f"{name}.parquet", compression="zstd", row_group_size=CUSTOMER_ROW_GROUP)
    definitions = [*BUILTIN, *custom]
    (snapshot / "catalogue.json").write_text(
        json.dumps([d.describe() | {"computed_at": computed_at} for d in definitions], ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    stats["seconds"] = round(time.perf_counter() - started, 3)
    (snapshot / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    derived.publish(AREA, snapshot)
    return PortraitRefresh(snapshot, tags.num_rows, len(definitions), stats["seconds"], stats)
