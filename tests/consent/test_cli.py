"""``omnicrm consents grant|withdraw|show`` over a real data folder."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from omnicrm.cli.main import app
from omnicrm.settings import Settings


def test_grant_withdraw_show(settings: Settings) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["consents", "grant", "phone::13912345678", "--channel", "sms", "--wording", "v1"])
    assert ok.exit_code == 0, ok.output
    assert "granted" in ok.output
    out = runner.invoke(app, ["consents", "withdraw", "phone::13912345678", "--channel", "sms"])
    assert out.exit_code == 0, out.output
    shown = runner.invoke(app, ["consents", "show", "phone::+8613912345678", "--json"])
    data = json.loads(shown.output)
    assert [c["status"] for c in data["consents"]] == ["withdrawn"]
    assert len(data["history"]) == 2
    bad = runner.invoke(app, ["consents", "grant", "phone::13912345678", "--channel", "fax", "--wording", "v1"])
    assert bad.exit_code != 0 and "channel" in str(bad.exception)
    link = runner.invoke(app, ["consents", "unsubscribe-link", "email::a@shop.cn"])
    assert link.exit_code == 0 and "/u/" in link.output
