"""Campaign coupons issued by omnicrm's own coupon service: the coupon channel calls ``POST /coupons/issue`` on a
real server on 127.0.0.1, each recipient's text carries their own single-use code, and asking again with the
same key hands back the same coupon."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import httpx

from omnicrm.access.api_keys import create_api_key
from omnicrm.campaigns.definition import create_campaign
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.campaigns.sender import run_campaign
from omnicrm.loyalty.coupon_redemptions import redeem
from omnicrm.loyalty.coupons import Template, create_template, customer_coupons
from tests.campaigns.conftest import addresses, channel_settings, grant, new_segment
from tests.campaigns.providers import AliyunSms
from tests.channels.gateways import Gateway
from tests.live import LiveServer


def test_campaign_coupons_come_from_omnicrm_itself(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    server = LiveServer(merchant, loader_interval=0, env={"OMNICRM_CAMPAIGN_INTERVAL_SECONDS": "0",
                                                          "OMNICRM_CONFIG": str(merchant / "none.toml")})  # fmt: skip
    server.start()
    try:
        setup = shop_of(merchant)
        token = create_api_key(setup.state, "coupon channel", ["coupons:write"])
        channels = channel_settings(gateway.url, 1)
        channels["own_coupons"] = {"kind": "coupon", "base_url": server.url, "credentials": {"token": token},
                                   "rate_per_second": 0, "backoff_base": 0.01}  # fmt: skip
        system = shop_of(merchant, channels=channels)
        create_template(system.state, Template(id="D11-30", name="满199减30", kind="threshold", total_quantity=100,
                                               amount_off_fen=3000, min_spend_fen=19900, valid_days=30), by="test")  # fmt: skip
        sms = AliyunSms().install(gateway)
        phones = addresses(merchant, "phone")[:5]
        grant(system.state, [k for _, k in phones], "sms")
        content = {"zh": {"body": "双11回馈：满199减30，券码 {{ coupon_code }}"}, "coupon_template": "D11-30",
                   "coupon_channel": "own_coupons"}  # fmt: skip
        campaign = create_campaign(system.state, system.channels, system.settings,
                                   {"name": "own coupons", "segment_id": new_segment(system), "channel": "sms",
                                    "content": content, "holdout_share": 0.0}, by="test")  # fmt: skip
        launch(system, campaign.id)
        assert run_campaign(system, campaign.id).counts == {"sent": 5}
        texts = {s["phone"]: s["text"] for s in sms.sent}
        for customer_id, key in phones:
            (coupon,) = customer_coupons(system.state, customer_id)
            assert coupon.campaign_id == str(campaign.id) and texts[key.split(":", 2)[2]].endswith(
                coupon.code + "回T退订"
            )
        again = httpx.post(f"{server.url}/coupons/issue", headers={"Authorization": f"Bearer {token}"},
                           json={"template_id": "D11-30", "customer_id": phones[0][0],
                                 "idempotency_key": f"{campaign.id}:{phones[0][0]}:1:coupon"})  # fmt: skip
        assert again.json()["coupon_id"] == customer_coupons(system.state, phones[0][0])[0].code
        refused = httpx.post(f"{server.url}/coupons/issue", headers={"Authorization": f"Bearer {token}"},
                             json={"template_id": "nope", "customer_id": 1, "idempotency_key": "k"})  # fmt: skip
        assert refused.status_code == 422 and refused.json()["code"] == "unknown_template"
        code = customer_coupons(system.state, phones[1][0])[0].code
        used = redeem(system.state, code, channel="store", amount_fen=25900, store_code="S001", guide_id="G7",
                      at=dt.datetime.now(dt.UTC))  # fmt: skip
        assert used.discount_fen == 3000
    finally:
        server.stop()
