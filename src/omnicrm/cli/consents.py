"""``omnicrm consents``: record grants and withdrawals, show an address's or a customer's consents."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

consents_app = typer.Typer(help="Consent per address, channel and purpose; opt-outs.", no_args_is_help=True)

Channel = Annotated[str, typer.Option(help="email, sms, wechat_oa, wechat_mp, wecom or app_push.")]
Purpose = Annotated[str, typer.Option(help="marketing or service.")]
Source = Annotated[str, typer.Option(help="signup_form, staff, import, api, preference_centre, ...")]
At = Annotated[datetime | None, typer.Option(help="When the person decided, with offset (default: now).")]
SUBJECT_HELP = "Identifier key of the address: phone::+8613800138000, email::a@b.cn, wechat_openid:<appid>:<openid>."


def _record(subject: str, channel: str, purpose: str, granted: bool, source: str, wording: str | None,
            note: str | None, at: datetime | None) -> None:  # fmt: skip
    from omnicrm.consent import ledger
    from omnicrm.consent.subjects import check_channel, customer_of, subject_key

    ctx = Context.load()
    key = subject_key(subject, check_channel(channel))
    customer_id = customer_of(ctx.derived.current("identity"), key)
    done = ledger.record(
        ctx.state, subject=key, channel=channel, purpose=purpose, granted=granted, source=source,
        by=getpass.getuser(), wording=wording, detail=note, customer_id=customer_id, at=at,
    )  # fmt: skip
    assert done is not None
    console.print(f"{key}: {purpose} on {channel} {done.status} (record {done.id})")


@consents_app.command()
def grant(
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)],
    channel: Channel,
    purpose: Purpose = "marketing",
    source: Source = "staff",
    wording: Annotated[str | None, typer.Option(help="Version of the wording the person agreed to.")] = None,
    note: Annotated[str | None, typer.Option(help="Why, or where it was given.")] = None,
    at: At = None,
) -> None:
    """Record that the person gave consent."""
    _record(subject, channel, purpose, True, source, wording, note, at)


@consents_app.command()
def withdraw(
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)],
    channel: Channel,
    purpose: Purpose = "marketing",
    source: Source = "staff",
    note: Annotated[str | None, typer.Option(help="Why, or how they asked.")] = None,
    at: At = None,
) -> None:
    """Record that the person withdrew consent (takes effect at once)."""
    _record(subject, channel, purpose, False, source, None, note, at)


@consents_app.command()
def show(
    subject: Annotated[str | None, typer.Argument(help=SUBJECT_HELP)] = None,
    customer: Annotated[int | None, typer.Option(help="A customer id instead: all of their addresses.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Current consents of an address (with its history) or of a customer's addresses."""
    from omnicrm.consent.overview import customer_consents, subject_consents
    from omnicrm.consent.subjects import subject_key

    if (subject is None) == (customer is None):
        raise typer.BadParameter("give either an identifier key or --customer")
    ctx = Context.load()
    if customer is not None:
        data: dict[str, Any] = customer_consents(ctx.state, ctx.derived.current("identity"), customer).as_dict()
    else:
        data = subject_consents(ctx.state, subject_key(subject or ""))
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    table = Table("address", "channel", "purpose", "status", "source", "wording", "at")
    for c in data["consents"]:
        table.add_row(c["subject"], c["channel"], c["purpose"], c["status"], c["source"], c["wording"] or "",
                      str(c["at"]))  # fmt: skip
    console.print(table)
    asked = [c["subject"] for c in data["personalisation_choices"] if c["non_personalised"]]
    console.print(f"non-personalised marketing only: {'yes (' + ', '.join(asked) + ')' if asked else 'no'}")


@consents_app.command("wechat-token")
def wechat_token(
    appid: Annotated[str, typer.Argument(help="App id of the official account or mini-program.")],
    token: Annotated[str, typer.Argument(help="The server token set in the WeChat admin console.")],
) -> None:
    """Set the token WeChat signs server messages with (for /wechat/APPID/events)."""
    from omnicrm.consent.wechat import set_server_token

    set_server_token(Context.load().state, appid, token)
    console.print(f"server token of {appid} set; server URL: <your address>/wechat/{appid}/events")


@consents_app.command("unsubscribe-link")
def unsubscribe_link(
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)],
    channel: Channel = "email",
    purpose: Purpose = "marketing",
    base_url: Annotated[str, typer.Option(help="The address people reach omnicrm at.")] = "http://127.0.0.1:8000",
) -> None:
    """Print the signed unsubscribe link of an address."""
    from omnicrm.consent.subjects import check_channel, subject_key
    from omnicrm.consent.unsubscribe import unsubscribe_url

    ctx = Context.load()
    key = subject_key(subject, check_channel(channel))
    print(unsubscribe_url(base_url, ctx.settings.secret_key, key, channel, purpose))


@consents_app.command("sms-up-url")
def sms_up_url() -> None:
    """Print the address to give Alibaba Cloud SMS for pushing replies (SmsUp, HTTP batch push mode)."""
    from omnicrm.consent.replies import sms_up_token

    settings = Context.load().settings
    print(f"{settings.public_url.rstrip('/')}/sms/aliyun/{sms_up_token(settings.secret_key)}/up")


def register(app: typer.Typer) -> None:
    app.add_typer(consents_app, name="consents")
