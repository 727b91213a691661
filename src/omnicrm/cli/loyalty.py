"""``omnicrm loyalty``: the loyalty jobs (award, activate, expire, tiers), the rules, a member, adjustments, the
liability and coupons, as rich tables. ``omnicrm refresh --loyalty`` runs the daily jobs after the portrait."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register", "run_daily"]

loyalty_app = typer.Typer(help="Loyalty: points, tiers, the liability and coupons.", no_args_is_help=True)
coupons_app = typer.Typer(help="Coupon templates, issuing and the redemption report.", no_args_is_help=True)
loyalty_app.add_typer(coupons_app, name="coupons")

AtOption = Annotated[str | None, typer.Option("--at", help="Run as of this moment (ISO, with offset); default now.")]


def _at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO date or time", param_hint="--at") from exc
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no offset: add one, e.g. +08:00", param_hint="--at")
    return moment


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def _when(value: dt.datetime | None) -> str:
    return "—" if value is None else value.isoformat(timespec="minutes")


# --- jobs --------------------------------------------------------------------------------------------------------


def _award(ctx: Context, at: dt.datetime | None) -> None:
    from omnicrm.api.loyalty_programme import award_from_facts, saved_rules

    rules = saved_rules(ctx.state)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as bar:  # fmt: skip
        task = bar.add_task(f"award points (rules v{rules.version})", total=None)

        def told(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = award_from_facts(ctx.state, ctx.engine, ctx.derived, rules, now=at, by=_who(), progress=told)
    console.print(
        f"award: {result.orders:,} orders read; {result.awarded:,} new lots of {result.points:,} points; "
        f"{result.already:,} had earned; {result.nothing:,} earn nothing; {result.reversed_orders:,} refunds "
        f"reversed {result.reversed_points:,} points ({result.written_off:,} written off)"
    )


def _activate(ctx: Context, at: dt.datetime | None) -> None:
    from omnicrm.loyalty.lifecycle import activate_due

    with console.status("activating points past their return window…"):
        moved = activate_due(ctx.state, at)
    console.print(f"activate: {moved.lots:,} lots of {moved.members:,} members became spendable")


def _expire(ctx: Context, at: dt.datetime | None) -> None:
    from omnicrm.loyalty.lifecycle import expire_due

    with console.status("expiring points whose date has come…"):
        moved = expire_due(ctx.state, at)
    console.print(f"expire: {moved.points:,} points in {moved.lots:,} lots of {moved.members:,} members expired")


def _evaluate(ctx: Context, at: dt.datetime | None) -> None:
    from omnicrm.api.loyalty_programme import issue_tier_coupons, saved_rules, tier_program
    from omnicrm.loyalty.tiers import evaluate_tiers

    rules = saved_rules(ctx.state)
    with console.status("reviewing tiers…"):
        changes = evaluate_tiers(ctx.state, tier_program(rules), at, rule_version=rules.version)
        given = issue_tier_coupons(ctx.state, changes, by=_who())
    kinds: dict[str, int] = {}
    for ch in changes:
        kinds[ch.change] = kinds.get(ch.change, 0) + 1
    said = ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items())) or "no changes"
    console.print(f"tiers: {said}; upgrade coupons: {given['issued']:,} issued, {given['refused']:,} refused")
    for problem in given["problems"]:
        console.print(f"  [yellow]coupon template {problem['template_id']}: {problem['message']}[/yellow]")


def run_daily(ctx: Context, at: dt.datetime | None = None) -> None:
    """The daily loyalty jobs in their order: award orders from the facts, activate, expire, review tiers (when the
    rules have a tier programme)."""
    from omnicrm.api.loyalty_programme import saved_rules

    rules = saved_rules(ctx.state)
    _award(ctx, at)
    _activate(ctx, at)
    _expire(ctx, at)
    if rules.tiers is not None:
        _evaluate(ctx, at)


@loyalty_app.command()
def award(at: AtOption = None) -> None:
    """Award points for every order in the facts under the saved rules (replays award nothing; refunds reverse)."""
    _award(Context.load(), _at(at))


@loyalty_app.command()
def activate(at: AtOption = None) -> None:
    """Make points spendable once their return window has ended."""
    _activate(Context.load(), _at(at))


@loyalty_app.command()
def expire(at: AtOption = None) -> None:
    """Expire the points whose date has come."""
    _expire(Context.load(), _at(at))


@loyalty_app.command()
def daily(at: AtOption = None) -> None:
    """Award, activate, expire and review tiers, in that order (what `omnicrm refresh --loyalty` runs)."""
    run_daily(Context.load(), _at(at))


# --- rules, tiers, liability ---------------------------------------------------------------------------------------


@loyalty_app.command()
def rules(
    set_file: Annotated[Path | None, typer.Option("--set", help="Save this JSON file as the next version.")] = None,
) -> None:
    """Show the loyalty rules in force (earn rules, expiry, point value, tiers), or save new ones."""
    from omnicrm.api.loyalty_programme import current_rules
    from omnicrm.loyalty.rules import save_rules

    ctx = Context.load()
    if set_file is not None:
        saved = save_rules(ctx.state, {**_json(set_file), "version": 0}, by=_who(), note=f"from {set_file.name}")
        console.print(f"loyalty rules saved as version {saved.version}")
        return
    console.print_json(current_rules(ctx.state).model_dump_json())


@loyalty_app.command()
def tiers(
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Review every member's tier now.")] = False,
    set_file: Annotated[Path | None, typer.Option("--set", help="Save this JSON tier programme.")] = None,
    at: AtOption = None,
) -> None:
    """The tier programme with members per tier and the latest changes; review or change it."""
    from omnicrm.api.loyalty_programme import (
        current_rules,
        recent_tier_changes,
        save_programme,
        tier_counts,
        tier_program,
    )

    ctx = Context.load()
    if set_file is not None:
        saved = save_programme(ctx.state, _json(set_file), by=_who())
        console.print(f"tier programme saved with the rules as version {saved.version}")
    if evaluate:
        _evaluate(ctx, _at(at))
    loaded = current_rules(ctx.state)
    program = tier_program(loaded)
    basis = "points" if program.basis == "points" else "fen spent"
    table = Table("tier", f"from ({basis} in {program.window_days} days)", "earn ×", "free shipping", "coupons",
                  "members", title=f"tiers (rules v{loaded.version})")  # fmt: skip
    counts = dict(tier_counts(ctx.state, program))
    for t in program.tiers:
        table.add_row(t.name, f"{t.threshold:,}", str(t.earn_multiplier), "yes" if t.free_shipping else "",
                      ", ".join(t.coupons), f"{counts.get(t.name, 0):,}")  # fmt: skip
    console.print(table)
    changes, total = recent_tier_changes(ctx.state, limit=10)
    if changes:
        recent = Table("customer", "change", "from", "to", "qualifying", "at", title=f"latest of {total:,} changes")
        for c in changes:
            recent.add_row(str(c["customer_id"]), c["change"], c["from"] or "—", c["to"], f"{c['qualifying']:,}",
                           _when(c["at"]))  # fmt: skip
        console.print(recent)


@loyalty_app.command()
def liability() -> None:
    """Outstanding points by expiry month, in money, with issued, redeemed, expired and breakage."""
    from omnicrm.api.loyalty_programme import current_rules
    from omnicrm.loyalty.liability import liability_report

    ctx = Context.load()
    report = liability_report(ctx.state, current_rules(ctx.state).point_value)
    table = Table("expires", "active", "pending", "money", title=f"points liability at ¥{report.point_value}/point")
    for m in report.months:
        table.add_row(m.month, f"{m.active:,}", f"{m.pending:,}", f"¥{m.money:,}")
    table.add_row("total", f"{report.outstanding - report.pending:,}", f"{report.pending:,}",
                  f"¥{report.outstanding_money:,}", style="bold")  # fmt: skip
    console.print(table)
    console.print(
        f"issued {report.issued:,} · redeemed {report.redeemed:,} · expired {report.expired:,} · reversed "
        f"{report.reversed:,} · adjusted out {report.adjusted_out:,} · debt {report.debt:,} · overdue "
        f"{report.overdue:,}\nbreakage {report.breakage_rate:.2%} → expected {report.expected_breakage:,} points "
        f"(¥{report.expected_breakage_money:,}); net liability ¥{report.net_liability_money:,}"
    )


# --- a member ------------------------------------------------------------------------------------------------------


@loyalty_app.command()
def member(
    customer_id: int,
    entries: Annotated[int, typer.Option(min=1, max=500, help="Ledger entries to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's summary as JSON.")] = False,
) -> None:
    """A member's points, tier, open lots, latest ledger entries and coupons."""
    from omnicrm.api.loyalty_programme import current_rules, member_json, member_summary, plain
    from omnicrm.loyalty.ledger import history, lots

    ctx = Context.load()
    m = member_summary(ctx.state, customer_id, current_rules(ctx.state))
    if as_json:
        console.print_json(data=plain(member_json(m)), default=str)
        return
    b = m.balance
    console.print(f"[bold]member {customer_id}[/bold]: {b.available:,} points available · {b.pending:,} pending · "
                  f"{b.debt:,} owed · next expiry {_when(b.next_expiry)}")  # fmt: skip
    if m.tier is not None:
        step = f" · {m.tier.to_next:,} more for {m.tier.next_tier.name}" if m.tier.next_tier else ""
        console.print(f"tier {m.tier.tier.name} (qualifying {m.tier.qualifying:,}{step})")
    table = Table("lot", "source", "order", "points", "left", "status", "expires", title="open lots")
    for lot in lots(ctx.state, customer_id, open_only=True):
        table.add_row(str(lot.id), lot.source, lot.order_id or "—", f"{lot.points:,}", f"{lot.remaining:,}",
                      lot.status, _when(lot.expires_at))  # fmt: skip
    console.print(table)
    ledger = Table("entry", "kind", "points", "at", "reference / reason", "by", title="ledger (newest first)")
    for e in history(ctx.state, customer_id, limit=entries):
        ledger.add_row(str(e.id), e.kind, f"{e.points:+,}", _when(e.at), e.reason or e.reference or "", e.recorded_by)
    console.print(ledger)
    held = Table("code", "template", "status", "expires", title="coupons")
    for c in m.coupons:
        held.add_row(c.code, c.template_id, m.coupon_status(c), _when(c.expires_at))
    console.print(held)


@loyalty_app.command()
def adjust(
    customer_id: int,
    points: Annotated[int, typer.Argument(help="Above zero to credit, below zero to take.")],
    reason: Annotated[str, typer.Option(help="Why: kept with the entry and who made it.")],
    expires_at: Annotated[str | None, typer.Option(help="For a credit: when it expires (ISO with offset).")] = None,
) -> None:
    """A manual adjustment of a member's points (audited with your user name)."""
    from omnicrm.loyalty.ledger import adjust as adjust_points

    entry = adjust_points(Context.load().state, customer_id, points, reason=reason, by=_who(),
                          expires_at=_at(expires_at))  # fmt: skip
    console.print(f"member {customer_id}: entry {entry.id}, {entry.points:+,} points ({entry.reason})")


# --- coupons -------------------------------------------------------------------------------------------------------


@coupons_app.command("list")
def list_templates() -> None:
    """Coupon templates with what was issued, redeemed and is left."""
    from omnicrm.api.loyalty_coupons import list_templates as listed

    table = Table("template", "name", "kind", "issued", "left", "redeemed", "expired", "discount", title="templates")
    for t, n in listed(Context.load().state):
        table.add_row(t.id, t.name, t.kind, f"{n.issued:,}", f"{t.total_quantity - n.issued:,}", f"{n.redeemed:,}",
                      f"{n.expired:,}", _yuan(n.discount_fen))  # fmt: skip
    console.print(table)


@coupons_app.command()
def create(spec: Annotated[Path, typer.Argument(help="JSON file: id, name, kind, amounts in fen, validity …")]) -> None:
    """Create a coupon template (the same definition again changes nothing)."""
    from omnicrm.loyalty.coupons import Template, create_template

    body = _json(spec)
    if not isinstance(body, dict):
        raise typer.BadParameter(f"{spec}: expected a JSON object")
    try:
        times = {k: dt.datetime.fromisoformat(body[k]) for k in ("valid_from", "valid_until") if body.get(k)}
        template = Template(**{**body, **times, "channels": tuple(body.get("channels", ("online", "store")))})
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{spec}: {exc}") from exc
    made = create_template(Context.load().state, template, by=_who())
    console.print(f"coupon template {made.id} ready: {made.name}")


@coupons_app.command()
def issue(
    template_id: str,
    key: Annotated[str, typer.Option(help="The batch key: running it again issues nothing new.")],
    customer: Annotated[list[int] | None, typer.Option(help="A customer id (repeat for more).")] = None,
    segment: Annotated[int | None, typer.Option(help="A saved segment: its members now.")] = None,
) -> None:
    """Issue a coupon of the template to customers or to a saved segment's members."""
    from omnicrm.api.loyalty_coupons import issue_to

    ctx = Context.load()
    with console.status("issuing…"):
        result = issue_to(ctx.state, template_id, key=key, by=_who(), customer_ids=customer or None,
                          segment_id=segment, facts=ctx.facts, derived=ctx.derived)  # fmt: skip
    refused: dict[str, int] = {}
    for why in result.refused.values():
        refused[why] = refused.get(why, 0) + 1
    console.print(f"{template_id}: {len(result.issued):,} issued, {len(result.repeated):,} issued before with this "
                  f"key, {len(result.refused):,} refused {refused or ''}")  # fmt: skip


@coupons_app.command()
def report() -> None:
    """Issued, redeemed, expired, redemption rate and discount by template, store and store guide."""
    from omnicrm.loyalty.coupon_redemptions import report as coupon_report

    found = coupon_report(Context.load().state)
    for title, rows in (("templates", found.templates), ("stores", found.stores), ("guides", found.guides)):
        table = Table(title[:-1], "issued", "redeemed", "expired", "rate", "redeemed here", "discount", title=title)
        for r in rows:
            rate = "—" if r.redemption_rate is None else f"{r.redemption_rate:.1%}"
            table.add_row(r.key, f"{r.issued:,}", f"{r.redeemed:,}", f"{r.expired:,}", rate, f"{r.redeemed_here:,}",
                          _yuan(r.discount_fen))  # fmt: skip
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(loyalty_app, name="loyalty")
