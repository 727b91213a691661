"""``omnicrm import`` and ``omnicrm quarantine list`` from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from omnicrm.cli import context
from omnicrm.cli.main import app, main
from omnicrm.errors import ImportFileError
from omnicrm.settings import Settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
runner = CliRunner()


def test_import_prints_a_summary_and_is_idempotent(settings: Settings) -> None:
    result = runner.invoke(app, ["import", "tmall", str(FIXTURES / "tmall_orders.csv"), "--kind", "orders", "-q"])
    assert result.exit_code == 0, result.output
    assert "imported tmall_orders.csv from tmall with mapping tmall_orders" in result.output
    assert "rows read 4 · accepted 4 order line facts · quarantined 0" in result.output
    assert "rows/s" in result.output
    glob = str(settings.facts_dir / "order_line" / "date=*" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(4,)]

    again = runner.invoke(app, ["import", "tmall", str(FIXTURES / "tmall_orders.csv"), "--kind", "orders", "-q"])
    assert again.exit_code == 0
    assert "tmall_orders.csv was already imported" in again.output
    assert "as import #1 (4 rows accepted, 0 quarantined); nothing to do." in again.output


def test_bad_rows_exit_0_and_show_in_the_quarantine(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context.console, "width", 160)
    path = tmp_path / "members.csv"
    text = (FIXTURES / "members.csv").read_text(encoding="utf-8")
    path.write_text(text.replace("1988-12-01", "1988-13-01").replace("M0000000003", ""), encoding="utf-8")
    result = runner.invoke(app, ["import", "crm", str(path), "--kind", "customers", "--mapping", "members", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "rows read 3 · accepted 1 person facts · quarantined 2" in result.output
    assert "birthday: '1988-13-01' is not a date in any of the formats %Y-%m-%d, %Y%m%d, %Y/%m/%d, ISO 8601 — 1" in (
        result.output
    )
    assert "member_card: required value missing — 1" in result.output
    assert "omnicrm quarantine list --source crm --import 1" in result.output

    listed = runner.invoke(app, ["quarantine", "list", "--source", "crm", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["line"], r["field"], r["file"], r["ref"]) for r in rows] == [
        (4, "member_card", "members.csv", "1"),
        (3, "birthday", "members.csv", "1"),
    ]
    assert json.loads(rows[1]["raw"])["birthday"] == "1988-13-01"
    table = runner.invoke(app, ["quarantine", "list", "--limit", "5"])
    assert table.exit_code == 0
    assert "members.csv:3" in table.output and "members.csv:4" in table.output
    assert "required value missing" in table.output
    empty = runner.invoke(app, ["quarantine", "list", "--source", "jd"])
    assert "no quarantined rows for source jd" in empty.output


def test_whole_file_errors_raise_omnicrm_errors(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes((FIXTURES / "tmall_orders.csv").read_text(encoding="utf-8").encode("gbk"))
    result = runner.invoke(app, ["import", "tmall", str(path), "--kind", "orders", "-q"])
    assert isinstance(result.exception, ImportFileError)
    assert str(result.exception) == (
        "orders.csv is not UTF-8 (looks like GBK/GB18030, common in Tmall/JD exports); run again with --encoding gbk"
    )
    ok = runner.invoke(app, ["import", "tmall", str(path), "--kind", "orders", "--encoding", "gbk", "-q"])
    assert ok.exit_code == 0 and "accepted 4" in ok.output


def test_main_exits_2_with_the_message(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jd.csv"
    path.write_text("订单号,商品编号\n1,2\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["omnicrm", "import", "jd", str(path), "--kind", "orders", "-q"])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: jd.csv is missing 13 column(s) that mapping 'jd_orders' needs" in err


def test_kind_is_required_and_checked(settings: Settings) -> None:
    result = runner.invoke(app, ["import", "tmall", str(FIXTURES / "tmall_orders.csv")])
    assert result.exit_code == 2
    result = runner.invoke(app, ["import", "tmall", str(FIXTURES / "tmall_orders.csv"), "--kind", "order"])
    assert result.exit_code == 2


def test_wechat_appid_parameter(settings: Settings) -> None:
    result = runner.invoke(
        app,
        ["import", "wechat", str(FIXTURES / "wechat_followers.csv"), "-k", "customers", "-p", "appid=wx123", "-q"],
    )
    assert result.exit_code == 0, result.output
    glob = str(settings.facts_dir / "person" / "date=*" / "*.parquet")
    assert duckdb.sql(f"SELECT DISTINCT wechat_appid FROM read_parquet('{glob}')").fetchall() == [("wx123",)]
