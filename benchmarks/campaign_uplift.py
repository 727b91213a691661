"""Campaign uplift against the simulator's truth: do the 95% intervals cover the true effect 95 times in 100?

1. Coverage: ``--campaigns`` (100) simulated campaigns per channel (``omnicrm.simulate.campaign_response``: people
   with their own baseline and their own response, a random holdout, sends that sometimes fail), each measured by the
   same ``uplift`` function ``measure_campaign`` uses. Per channel: the true intent-to-treat effect, the mean
   estimate, how many conversion intervals (Newcombe) and revenue-per-person intervals (Welch) cover the truth
   (target: at least 90 of 100), how often the verdict was "positive effect", and the time per campaign.
2. End to end: one simulated campaign through the whole product: people and their orders written as Parquet facts by
   the facts store (a fact batch staged, committed in the state database, published), OneID resolved by
   ``refresh_identity``, the campaign and its send log inserted into a SQLite state store, then ``measure_campaign``.
   Its figures must equal those of the pure function on the simulated outcomes (orders outside the window included in
   the facts, and left out by both).

The run fails (exit 1) when a channel's conversion intervals cover the truth fewer than 90 times in 100 (scaled to
``--campaigns``) or the end-to-end figures differ.

Run: ``.venv/bin/python benchmarks/campaign_uplift.py [--campaigns 100] [--people 20000] [--seed 1]
[--e2e-people 5000] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.campaigns.measure import CampaignMeasure, measure_campaign
from omnicrm.campaigns.uplift import POSITIVE, ArmStats, Uplift, uplift
from omnicrm.identity.explain import normalise_many
from omnicrm.identity.refresh import refresh_identity
from omnicrm.simulate.campaign_response import CHANNEL_EFFECTS, SimulatedCampaign, simulate_campaign
from omnicrm.store.batches import begin_batch, commit_batch
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import SCHEMAS, FactsStore
from omnicrm.store.schema import campaign_recipients, campaigns, link_clicks, segments
from omnicrm.store.state import StateStore

LAUNCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
COST_MICROS = {"email": 1_000, "sms": 45_000, "wechat": 0, "push": 0}  # per message sent
console = Console(width=max(120, shutil.get_terminal_size().columns))


def arms(sim: SimulatedCampaign) -> tuple[ArmStats, ArmStats]:
    t, h = sim.treated, ~sim.treated
    return ArmStats.of(sim.converted[t], sim.revenue[t]), ArmStats.of(sim.converted[h], sim.revenue[h])


def coverage(campaigns_per_channel: int, people: int, seed: int) -> bool:
    """Part 1: the coverage table; True when every channel reaches the target."""
    rng = np.random.default_rng(seed)
    table = Table(title=f"Coverage of 95% intervals: {campaigns_per_channel} campaigns × {people:,} people per channel",
                  title_justify="left")  # fmt: skip
    for name in ("channel", "true effect", "mean estimate", "conversion covered", "revenue covered",
                 "verdict positive", "ms simulate", "ms uplift"):  # fmt: skip
        table.add_column(name, justify="left" if name == "channel" else "right")
    target = int(np.ceil(0.9 * campaigns_per_channel))
    ok = True
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for channel in CHANNEL_EFFECTS:
            task = progress.add_task(channel, total=campaigns_per_channel)
            truth, estimate, covered, revenue_covered, positive, t_sim, t_up = [], [], 0, 0, 0, 0.0, 0.0
            for _ in range(campaigns_per_channel):
                started = time.perf_counter()
                sim = simulate_campaign(rng, people=people, channel=channel)
                simulated = time.perf_counter()
                got: Uplift = uplift(*arms(sim))
                t_sim, t_up = t_sim + simulated - started, t_up + time.perf_counter() - simulated
                truth.append(sim.true_effect)
                estimate.append(got.conversion.estimate or 0.0)
                covered += got.conversion.covers(sim.true_effect)
                revenue_covered += got.revenue_per_person.covers(sim.true_revenue_effect)
                positive += got.verdict == POSITIVE
                progress.advance(task)
            ok &= covered >= target
            table.add_row(
                channel, f"{np.mean(truth):+.3%}", f"{np.mean(estimate):+.3%}",
                f"[{'green' if covered >= target else 'red'}]{covered} / {campaigns_per_channel}[/]",
                f"{revenue_covered} / {campaigns_per_channel}", f"{positive} / {campaigns_per_channel}",
                f"{1000 * t_sim / campaigns_per_channel:.2f}", f"{1000 * t_up / campaigns_per_channel:.3f}",
            )  # fmt: skip
    console.print(table)
    console.print(
        f"target: at least {target} of {campaigns_per_channel} conversion intervals cover the truth per channel"
    )
    return ok


def write_facts(state: StateStore, facts: FactsStore, kind: str, rows: list[dict[str, object]]) -> None:
    """Write fact rows the way importers do: a batch begun in the state store, staged, committed, published."""
    with state.begin() as conn:
        batch = begin_batch(conn, kind=kind, origin="import")
    base = {"ingest_id": batch.ingest_id, "ingested_at": LAUNCH + dt.timedelta(days=60), "source_line": 1}
    table = pa.Table.from_pylist([base | r for r in rows], schema=SCHEMAS[kind])
    files = facts.stage_table(kind, table, batch.ingest_id)
    with state.begin() as conn:
        commit_batch(conn, batch, files=files, rows=table.num_rows)
    facts.publish(batch.ingest_id)


def record_campaign(state: StateStore, sim: SimulatedCampaign, ids: np.ndarray, rng: np.random.Generator) -> int:
    """The campaign, its send log (both arms) and the clicks of 10% of those reached, in the state store."""
    with state.begin() as conn:
        made = dict(created_by="benchmark", created_at=LAUNCH, updated_at=LAUNCH)
        audience = insert(segments).values(name="simulated audience", rule="{}", **made).returning(segments.c.id)
        segment = conn.execute(audience).scalar_one()
        cid = int(conn.execute(insert(campaigns).values(
            name=f"simulated {sim.channel}", status="done", channel=sim.channel, consent_channel=sim.channel,
            segment_id=segment, content="{}", conversion_days=sim.window_days, seed="1", launched_at=LAUNCH, **made,
        ).returning(campaigns.c.id)).scalar_one())  # fmt: skip
        cost = COST_MICROS[sim.channel]
        conn.execute(insert(campaign_recipients), [
            {"campaign_id": cid, "step": "1", "customer_id": int(ids[i]), "arm": "treatment" if t else "holdout",
             "status": ("sent" if d else "failed") if t else "none", "idempotency_key": f"{cid}:{i}",
             "assigned_at": LAUNCH, "sent_at": LAUNCH if d else None, "cost_micros": cost if d else 0}
            for i, (t, d) in enumerate(zip(sim.treated.tolist(), sim.delivered.tolist(), strict=True))
        ])  # fmt: skip
        clickers = np.flatnonzero(sim.delivered & (rng.random(sim.people) < 0.1))
        if clickers.size:
            conn.execute(insert(link_clicks), [
                {"campaign_id": cid, "step": "1", "customer_id": int(ids[i]), "link_no": 1,
                 "at": LAUNCH + dt.timedelta(hours=2)} for i in clickers
            ])  # fmt: skip
    return cid


def end_to_end(root: Path, people: int, seed: int) -> bool:
    """Part 2: one simulated campaign through facts, OneID, the state store and ``measure_campaign``."""
    rng = np.random.default_rng(seed + 1)
    sim = simulate_campaign(rng, people=people, channel="sms")
    state = StateStore(f"sqlite:///{root / 'state.db'}")
    facts, derived = FactsStore(root / "facts"), DerivedStore(root / "derived")
    engine = Engine(facts)
    started = time.perf_counter()
    cards = [f"C{i:07d}" for i in range(people)]
    write_facts(state, facts, "person", [
        {"source": "crm", "source_key": card, "member_card": card, "observed_at": LAUNCH - dt.timedelta(days=90)}
        for card in cards
    ])  # fmt: skip
    write_facts(state, facts, "order_line", [
        {"source": "pos" if j % 3 == 0 else "tmall", "source_key": f"S{j}", "order_id": f"S{j:08d}", "line_no": 1,
         "member_card": cards[p], "store_code": "S001" if j % 3 == 0 else None, "quantity": 1, "currency": "CNY",
         "unit_price": Decimal(f"{v:.2f}"), "paid_amount": Decimal(f"{v:.2f}"), "refunded_amount": Decimal("0.00"),
         "status": "completed", "created_at": LAUNCH + dt.timedelta(seconds=s)}
        for j, (p, v, s) in enumerate(zip(sim.order_person.tolist(), sim.order_value.tolist(),
                                          sim.order_seconds.tolist(), strict=True))
    ])  # fmt: skip
    refresh_identity(state, engine, derived, probabilistic=False)
    snapshot = derived.current("identity")
    assert snapshot is not None
    sql = f"SELECT value, customer_id FROM '{snapshot / 'identifiers.parquet'}' WHERE id_type = 'member_card'"
    by_card = dict(duckdb.connect().execute(sql).fetchall())
    ids = np.array([by_card[v] for v, _ in normalise_many([("member_card", c) for c in cards])], np.int64)
    cid = record_campaign(state, sim, ids, rng)
    prepared = time.perf_counter()
    now = LAUNCH + dt.timedelta(days=sim.window_days + 31)  # after every simulated order
    got: CampaignMeasure = measure_campaign(state, engine, derived, cid, now)
    measured = time.perf_counter()
    state.dispose()

    pure = uplift(*arms(sim))
    t, h = sim.treated, ~sim.treated
    in_window = int(sim.in_window.sum())
    console.print(
        f"\nEnd to end: {people:,} people, {sim.order_person.size:,} orders ({sim.order_person.size - in_window:,} "
        f"outside the {sim.window_days}-day window); facts, OneID and send log in {prepared - started:.1f}s, "
        f"measure_campaign in {measured - prepared:.2f}s"
    )
    table = Table(title="measure_campaign against the pure uplift on the simulated outcomes", title_justify="left")
    for name in ("figure", "measure_campaign", "pure function", "same"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    pairs: list[tuple[str, object, object]] = [
        ("treatment reached", got.treatment.reached, int(t.sum())),
        ("treatment delivered", got.treatment.delivered, int(sim.delivered.sum())),
        ("treatment converted", got.treatment.converted, int(sim.converted[t].sum())),
        ("holdout reached", got.holdout.reached, int(h.sum())),
        ("holdout converted", got.holdout.converted, int(sim.converted[h].sum())),
        ("treatment revenue", got.treatment.revenue, float(sim.revenue[t].sum())),
        ("holdout revenue", got.holdout.revenue, float(sim.revenue[h].sum())),
    ]
    for name, full, alone in (("conversion uplift", got.uplift.conversion, pure.conversion),
                              ("revenue/person uplift", got.uplift.revenue_per_person, pure.revenue_per_person)):  # fmt: skip
        pairs += [(f"{name} {k}", getattr(full, k), getattr(alone, k)) for k in ("estimate", "low", "high")]
    pairs += [
        ("verdict", got.uplift.verdict, pure.verdict),
        ("revenue verdict", got.uplift.revenue_verdict, pure.revenue_verdict),
    ]
    same_all = True
    for name, a, b in pairs:
        same = _same(a, b)
        same_all &= same
        table.add_row(name, _show(a), _show(b), "[green]yes[/]" if same else "[red]NO[/]")
    console.print(table)
    console.print(
        f"clicked {got.treatment.clicked:,}, cost {got.cost:,.2f}, incremental conversions "
        f"{got.incremental_conversions.estimate or 0:+.1f}, incremental revenue {got.incremental_revenue.estimate or 0:+,.0f}, "
        f"ROI {got.roi.estimate if got.roi and got.roi.estimate is not None else float('nan'):+.1f}; "
        f"true effect {sim.true_effect:+.3%} (covered: {got.uplift.conversion.covers(sim.true_effect)})"
    )
    return same_all


def _same(a: object, b: object) -> bool:
    """Equal, or for money and rates equal up to float rounding (the facts sum exact decimals)."""
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-6))
    return a == b


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=100, help="simulated campaigns per channel")
    parser.add_argument("--people", type=int, default=20_000, help="people per simulated campaign")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--e2e-people", type=int, default=5_000, help="people of the end-to-end campaign")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the end-to-end stores (default: temp)")
    args = parser.parse_args()
    covered = coverage(args.campaigns, args.people, args.seed)
    # a folder of its own, emptied first: the stores of an earlier run would hold this campaign twice
    base = args.workdir or Path(tempfile.mkdtemp(prefix="omnicrm-bench-uplift-"))
    root = base / f"e2e-{args.e2e_people}-seed-{args.seed}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        same = end_to_end(root, args.e2e_people, args.seed)
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    if not (covered and same):
        console.print(
            "[red]FAILED[/]: "
            + ("coverage below target " if not covered else "")
            + ("end-to-end mismatch" if not same else "")
        )
        sys.exit(1)
    console.print("[green]OK[/]: coverage on target and the full path measures what the pure function does")


if __name__ == "__main__":
    main()
