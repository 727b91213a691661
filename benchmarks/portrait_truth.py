"""The portrait against the simulator's truth, and the repeat-purchase propensity model on held-out time.

1. Tags vs true behaviour: crosstabs of the true ``behaviour_type`` by ``lifecycle_stage``, ``rfm_segment``,
   ``promotion_only`` and ``discount_sensitivity``, of the true primary channel by ``preferred_channel``, and a few
   agreement shares. Customers are mapped to true persons through their identity records (``record_persons``);
   a customer spanning several persons takes the person with most records. (The ground truth does not export a
   person's favourite category, so ``preferred_category`` has nothing independent to be checked against.)
2. Propensity: the cohorts (size, share who bought again, true promo hunters), LightGBM's hold-out AUC against
   the RFM-only logistic regression, with 95% bootstrap intervals (hold-out buyers resampled), and the features
   the model leans on.

Run: ``.venv/bin/python benchmarks/portrait_truth.py [--people 20000] [--seed 1] [--data-dir DIR]`` (a data dir that
already holds the merchant is reused).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.demo import load_demo
from omnicrm.identity.refresh import refresh_identity
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.portrait.propensity import build_examples, fit_propensity, rfm_matrix
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.portrait.tags.compute import compute_tags
from omnicrm.portrait.value import value_scores
from omnicrm.simulate.record_truth import record_persons
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

CHINA = dt.timezone(dt.timedelta(hours=8))
TYPES = ("loyal", "promo_hunter", "one_off", "drifting", "new_recent", "store_regular")
# the simulator's primary channel → the portrait's channel names
CHANNEL = "CASE primary_channel WHEN 'tmall' THEN 'marketplace' WHEN 'jd' THEN 'marketplace' WHEN 'mp' THEN 'wechat' ELSE primary_channel END"
console = Console(width=max(160, shutil.get_terminal_size().columns))


def merchant(root: Path, people: int, seed: int) -> tuple[Engine, Path, Path]:
    """The demo merchant in ``root`` (simulated, imported and resolved unless already there)."""
    facts, derived = FactsStore(root / "facts"), DerivedStore(root / "derived")
    engine = Engine(facts)
    if derived.current("identity") is None:
        state = StateStore(f"sqlite:///{root / 'state.db'}")
        started = time.perf_counter()
        load_demo(state, facts, data_dir=root, people=people, seed=seed, progress=False, say=lambda _: None)
        refresh_identity(state, engine, derived)
        state.dispose()
        console.print(
            f"merchant: {people:,} people (seed {seed}) simulated and resolved in {time.perf_counter() - started:.0f}s"
        )
    snapshot = derived.current("identity")
    assert snapshot is not None
    return engine, snapshot, root / "demo-exports" / f"people-{people}-seed-{seed}" / "ground_truth"


def customer_truth(snapshot: Path, truth_dir: Path) -> pa.Table:
    """(customer_id, person_id, behaviour_type, true_channel): each customer's majority person."""
    con = duckdb.connect()
    con.register("rp", record_persons(pq.read_table(snapshot / "occurrences.parquet"), truth_dir))
    return con.sql(
        f"""
        WITH c AS (
            SELECT r.customer_id, rp.person_id, count(*) AS n
            FROM read_parquet('{snapshot / "records.parquet"}') r JOIN rp USING (record_key) GROUP BY ALL
        ), m AS (SELECT customer_id, arg_max(person_id, n) AS person_id FROM c GROUP BY 1)
        SELECT m.customer_id, m.person_id, p.behaviour_type, {CHANNEL} AS true_channel
        FROM m JOIN read_parquet('{truth_dir / "people.parquet"}') p USING (person_id)
        """
    ).to_arrow_table()


def now_of(engine: Engine, snapshot: Path) -> dt.datetime:
    """Midnight (China time) after the last order: the portrait's 'today' for a simulated merchant."""
    inputs = PortraitInputs.from_snapshot(engine, snapshot)
    o = inputs.orders()
    last = engine.to_arrow(o.aggregate(last=o.created_at.max()))["last"][0].as_py()
    day = last.astimezone(CHINA).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), CHINA).astimezone(dt.UTC)


def portrait(inputs: PortraitInputs, snapshot: Path) -> pa.Table:
    """Built-in tags today (text interests left out: they are not what this benchmark checks)."""
    definitions = [d for d in BUILTIN if d.category != "interest" and d.id != "hobbies"]
    identifiers = inputs.engine.parquet([snapshot / "identifiers.parquet"], "identifiers")
    return compute_tags(inputs, definitions, extra_bases=[value_scores(inputs).table], identifiers=identifiers).tags


def crosstab(con: duckdb.DuckDBPyConnection, rows: str, column: str, title: str) -> Table:
    """Counts of ``rows`` × ``column`` over the mapped customers, with each row's share in brackets."""
    data = con.sql(f"SELECT {rows} AS r, CAST({column} AS VARCHAR) AS c, count(*) AS n FROM t GROUP BY ALL").fetchall()
    values = sorted({c for _, c, _ in data}, key=lambda v: (v is None, str(v)))
    keys = [r for r in TYPES if any(x == r for x, _, _ in data)] or sorted({r for r, _, _ in data})
    keys += sorted({r for r, _, _ in data} - set(keys))
    counts = {(r, c): n for r, c, n in data}
    table = Table(title=title, title_justify="left")
    table.add_column(rows)
    for v in values:
        table.add_column(str(v), justify="right")
    table.add_column("total", justify="right")
    for r in keys:
        total = sum(counts.get((r, v), 0) for v in values)
        cells = [f"{counts.get((r, v), 0):,} ({counts.get((r, v), 0) / total:.0%})" for v in values]
        table.add_row(r, *cells, f"{total:,}")
    return table


def agreement(con: duckdb.DuckDBPyConnection) -> Table:
    """A few shares that say whether a tag means what it says, by the true type."""
    checks = [
        ("tagged promotion_only", "promotion_only", "frequency > 0"),
        ("discount_sensitivity = high", "discount_sensitivity = 'high'", "frequency > 0"),
        ("preferred_channel = store", "preferred_channel = 'store'", "frequency > 0"),
        ("preferred_channel = true primary channel", "preferred_channel = true_channel", "frequency > 0"),
        ("lifecycle dormant or churned", "lifecycle_stage IN ('dormant', 'churned')", "frequency > 0"),
        ("lifecycle active", "lifecycle_stage = 'active'", "frequency > 0"),
        ("repeat buyer", "repeat_buyer", "frequency > 0"),
    ]
    table = Table(title="Agreement: share of each true type's buyers", title_justify="left")
    table.add_column("tag")
    for name in TYPES:
        table.add_column(name, justify="right")
    for label, condition, among in checks:
        got = dict(
            con.sql(
                f"SELECT behaviour_type, avg(CASE WHEN {condition} THEN 1.0 ELSE 0.0 END) FROM t WHERE {among} GROUP BY 1"
            ).fetchall()
        )
        table.add_row(label, *(f"{got[n]:.0%}" if n in got else "-" for n in TYPES))
    return table


def tags_vs_truth(inputs: PortraitInputs, snapshot: Path, truth: pa.Table) -> None:
    started = time.perf_counter()
    tags = portrait(inputs, snapshot)
    con = duckdb.connect()
    con.register("tags", tags)
    con.register("truth", truth)
    con.execute("CREATE TABLE t AS SELECT * FROM tags JOIN truth USING (customer_id)")
    mapped, persons, buyers, buyer_persons = con.sql(
        """SELECT count(*), count(DISTINCT person_id), count(*) FILTER (frequency > 0),
                  count(DISTINCT person_id) FILTER (frequency > 0) FROM t"""
    ).fetchall()[0]
    today = inputs.as_of.astimezone(CHINA)
    console.rule(f"1. Tags vs the simulator's truth (as of {today:%Y-%m-%d %H:%M} China time)")
    console.print(
        f"{tags.num_rows:,} customers, {mapped:,} mapped to {persons:,} true persons; {buyers:,} buyers are"
        f" {buyer_persons:,} persons. 'prospect' / 'no_purchase' / 'none' below are mostly a person's records that"
        f" OneID kept apart from the customer holding their orders. ({time.perf_counter() - started:.0f}s)"
    )
    for column in ("lifecycle_stage", "rfm_segment", "promotion_only", "discount_sensitivity"):
        console.print(crosstab(con, "behaviour_type", column, f"true behaviour_type × {column}"))
    console.print(crosstab(con, "true_channel", "preferred_channel", "true primary channel × preferred_channel"))
    console.print(agreement(con))


def bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, rounds: int = 1000) -> tuple[np.ndarray, ...]:
    """95% intervals of AUC(a), AUC(b) and their difference, resampling the hold-out buyers (paired)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(rounds):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            ra, rb = roc_auc_score(y[i], a[i]), roc_auc_score(y[i], b[i])
            out.append((ra, rb, ra - rb))
    return tuple(np.percentile(np.array(out), [2.5, 97.5], axis=0).T)


def propensity(inputs: PortraitInputs, snapshot: Path, truth: pa.Table) -> None:
    started = time.perf_counter()
    identifiers = inputs.engine.parquet([snapshot / "identifiers.parquet"], "identifiers")
    train, holdout, info = build_examples(inputs, identifiers=identifiers)
    model = fit_propensity(train, holdout)
    console.rule(f"2. Repeat-purchase propensity on held-out time ({time.perf_counter() - started:.0f}s)")
    con = duckdb.connect()
    con.register("truth", truth)
    cohorts = Table(
        title=f"Cohorts: first purchase in the promotion; label = bought in {info['horizon_days']} days after the cut",
        title_justify="left",
    )
    for name in (
        "cohort",
        "role",
        "feature cut (UTC)",
        "label window ends",
        "buyers",
        "bought again",
        "rate",
        "promo hunters",
    ):
        cohorts.add_column(name, justify="left" if name in ("cohort", "role") else "right")
    for role, examples in (("train", train), ("hold-out", holdout)):
        con.register("ex", examples.select(["customer_id", "cohort", "label"]))
        rows = con.sql(
            """SELECT cohort, count(*), sum(label), avg(label), avg(CASE WHEN behaviour_type = 'promo_hunter' THEN 1.0 ELSE 0.0 END)
               FROM ex LEFT JOIN truth USING (customer_id) GROUP BY 1 ORDER BY min(cohort)"""
        ).fetchall()
        for cohort, n, pos, rate, hunters in sorted(rows, key=lambda r: info["cohorts"][r[0]]["feature_cut"]):
            when = info["cohorts"][cohort]
            cohorts.add_row(
                cohort,
                role,
                when["feature_cut"][:16],
                when["label_end"][:10],
                f"{n:,}",
                f"{pos:,}",
                f"{rate:.1%}",
                f"{hunters:.0%}",
            )
    console.print(cohorts)
    y = holdout["label"].to_numpy()
    ours, rfm = model.predict(holdout), model.baseline.predict_proba(rfm_matrix(holdout))[:, 1]
    ci_ours, ci_rfm, ci_diff = bootstrap(y, ours, rfm)
    aucs = Table(title="Hold-out AUC", title_justify="left")
    for name in ("model", "AUC", "95% bootstrap"):
        aucs.add_column(name, justify="left" if name == "model" else "right")
    aucs.add_row("LightGBM on portrait tags", f"{model.auc_holdout:.3f}", f"{ci_ours[0]:.3f}..{ci_ours[1]:.3f}")
    aucs.add_row(
        "logistic regression on R, F, M", f"{model.baseline_auc_holdout:.3f}", f"{ci_rfm[0]:.3f}..{ci_rfm[1]:.3f}"
    )
    aucs.add_row(
        "difference", f"{model.auc_holdout - model.baseline_auc_holdout:+.3f}", f"{ci_diff[0]:+.3f}..{ci_diff[1]:+.3f}"
    )
    console.print(aucs)
    top = list(model.feature_importance.items())[:10]
    console.print("features by gain: " + ", ".join(f"{n} {g:.0f}" for n, g in top))
    example = model.score(holdout).sort_by([("repeat_propensity", "descending")]).slice(0, 3).to_pylist()
    for row in example:
        console.print(
            f"  customer {row['customer_id']}: {row['repeat_propensity']:.2f} ← {'; '.join(row['propensity_reasons'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, help="a folder to keep (and reuse) the merchant in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        engine, snapshot, truth_dir = merchant(root, args.people, args.seed)
        truth = customer_truth(snapshot, truth_dir)
        inputs = PortraitInputs.from_snapshot(engine, snapshot, now_of(engine, snapshot))
        tags_vs_truth(inputs, snapshot, truth)
        propensity(inputs, snapshot, truth)


if __name__ == "__main__":
    main()
