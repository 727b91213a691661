"""One recipient's ``Message``: the campaign's content rendered with their tags, tracked links and refusal link.

The tags a content uses are read for a whole claimed batch at once (one DuckDB query over the
portrait in force); a recipient whose message cannot be rendered gets a clear reason naming them
and the field, which the sender records as that recipient's permanent failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from omnicrm.campaigns.content import CompiledContent, RenderError, compile_content, render
from omnicrm.campaigns.definition import Campaign
from omnicrm.campaigns.links import link_maker, track_links
from omnicrm.channels.base import Message
from omnicrm.consent.unsubscribe import unsubscribe_url

if TYPE_CHECKING:
    from omnicrm.campaigns.launch import Marketing

__all__ = ["Renderer", "address_value", "prepared"]


def address_value(key: str) -> str:
    """What a channel sends to: the value part of an identifier key ``type:scope:value``."""
    return key.split(":", 2)[2] if key.count(":") >= 2 else key


def prepared(campaign: Campaign, public_url: str) -> CompiledContent:
    """The campaign's content compiled, with its literal URLs turned into tracked links."""
    return track_links(compile_content(campaign.content), public_url)


class Renderer:
    """Renders the messages of one campaign; ``prefetch`` the rows of a batch before asking for their messages."""

    def __init__(self, system: Marketing, campaign: Campaign) -> None:
        self.campaign = campaign
        self.settings = system.settings
        self.compiled = prepared(campaign, system.settings.public_url)
        portrait = system.derived.current("portrait")
        self.tags_file: Path | None = None if portrait is None else portrait / "tags.parquet"
        self._fields: dict[int, dict[str, Any]] = {}

    def prefetch(self, rows: Sequence[Any]) -> None:
        """Read the used tags of these recipients in one query."""
        self._fields = {int(r.customer_id): {"customer_id": int(r.customer_id)} for r in rows}
        tags = self.compiled.tags
        if not tags or not rows or self.tags_file is None:
            return
        con = duckdb.connect()
        con.register("wanted", pa.table({"customer_id": pa.array(list(self._fields), pa.int64())}))
        picked = ", ".join(f't."{t}"' for t in tags)  # names from the content's fixed allow-list
        ids = list(self._fields)
        found = con.sql(  # the id range lets DuckDB skip the row groups of the portrait no recipient is in
            f"SELECT t.customer_id, {picked} FROM read_parquet($path) t JOIN wanted USING (customer_id) "
            "WHERE t.customer_id BETWEEN $low AND $high",
            params={"path": str(self.tags_file), "low": min(ids), "high": max(ids)},
        ).to_arrow_table()
        for record in found.to_pylist():
            self._fields[int(record["customer_id"])].update(record)

    def message(self, row: Any, extra: Mapping[str, object] | None = None) -> Message | str:
        """The message for a send-log row (``extra``: values such as the issued coupon), or why it cannot be made."""
        customer = int(row.customer_id)
        if not row.address:
            return f"customer {customer}: no address on the campaign's channel"
        values = dict(self._fields.get(customer, {"customer_id": customer}))
        refusal = unsubscribe_url(self.settings.public_url, self.settings.secret_key, row.address,
                                  self.campaign.consent_channel, "marketing")  # fmt: skip
        values.update({"unsubscribe_url": refusal, "shop_name": self.settings.shop_name, **(extra or {})})
        links = link_maker(
            self.settings.public_url, self.settings.secret_key, self.campaign.id, str(row.step), customer
        )
        try:
            out = render(self.compiled, row.language or "zh", values, links)
        except RenderError as exc:
            return str(exc)
        return Message(
            channel=self.campaign.channel, address=address_value(row.address), campaign_id=str(self.campaign.id),
            recipient=str(customer), step=str(row.step), subject=out.subject, body=out.body, html=out.html,
            template_id=out.template_id, params=out.params, language=out.language, unsubscribe_url=refusal,
            purpose="marketing",
        )  # fmt: skip
