"""A real crash: ``omnicrm campaigns run`` is killed with SIGKILL in the middle of a large send; run again, the
campaign completes and every recipient got exactly one message (the provider's own records say so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from omnicrm.campaigns.definition import create_campaign
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.store.schema import campaign_recipients
from tests.campaigns.conftest import addresses, channel_settings, grant, new_segment
from tests.campaigns.providers import AliyunSms
from tests.channels.gateways import Gateway

R = campaign_recipients.c


def _runner(root: Path, gateway_url: str, campaign_id: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OMNICRM_DATA_DIR": str(root),
        "OMNICRM_CHANNELS": json.dumps(channel_settings(gateway_url, 1)),
        "OMNICRM_PUBLIC_URL": "https://crm.shop.example",
        "OMNICRM_FREQUENCY_CAP": "",
        "OMNICRM_QUIET_HOURS": "",
        "OMNICRM_CONFIG": str(root / "none.toml"),
    }
    command = [sys.executable, "-m", "omnicrm", "campaigns", "run", str(campaign_id), "--workers", "4",
               "--batch", "40", "--lease-seconds", "1"]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_mid_send_then_restart_sends_each_exactly_once(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant)
    provider = AliyunSms(delay=0.01).install(gateway)
    phones = addresses(merchant, "phone")
    grant(system.state, [k for _, k in phones], "sms")
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "crash", "segment_id": new_segment(system), "channel": "sms",
                                "content": {"zh": {"body": "会员日：满199减30"}}, "holdout_share": 0.1}, by="test")  # fmt: skip
    launch(system, campaign.id)
    with system.state.connect() as conn:
        treated = dict(conn.execute(select(R.customer_id, R.address).where(R.campaign_id == campaign.id,
                                                                           R.arm == "treatment")).all())  # fmt: skip
    assert len(treated) > 150

    first = _runner(merchant, gateway.url, campaign.id)
    deadline = time.monotonic() + 120
    while len(provider.sent) < len(treated) // 3:
        assert first.poll() is None, first.communicate()[0].decode()
        assert time.monotonic() < deadline, "the first runner sent too little"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    with system.state.connect() as conn:
        # claimed sends whose fate the dead runner never wrote down (almost always some: it claims 40 at a time)
        in_flight = conn.execute(
            select(func.count()).where(R.campaign_id == campaign.id, R.status == "sending")
        ).scalar_one()
    sent_before = len(provider.sent)
    assert sent_before < len(treated)

    time.sleep(1.2)  # the dead runner's lease lapses
    second = _runner(merchant, gateway.url, campaign.id)
    out, _ = second.communicate(timeout=180)
    assert second.returncode == 0, out.decode()
    report = json.loads(out.decode()[out.decode().index("{") :])
    assert report["stopped"] == "done"
    assert sum(report["settled"].values()) == in_flight
    assert set(report["settled"]) <= {"found_sent", "not_sent"}  # the SMS provider can always be asked

    expected = {address.split(":", 2)[2] for address in treated.values()}
    per_phone = provider.per_phone()
    assert set(per_phone) == expected and set(per_phone.values()) == {1}
    with system.state.connect() as conn:
        statuses = dict(conn.execute(select(R.status, func.count()).where(R.campaign_id == campaign.id,
                                                                          R.arm == "treatment").group_by(R.status)).all())  # fmt: skip
    assert statuses == {"sent": len(treated)}
