"""The interests basis: what customers search for, write to service and tell store clerks, as interests.

Texts come from the facts through the engine; tokenising (jieba) and the taxonomy match are in
``portrait.interests``. Hobbies are the interests found in store clerks' notes alone (what a person said
about themselves), interests are those found in any text.
"""

from __future__ import annotations

import duckdb
import ibis
import pyarrow as pa

from omnicrm.portrait.inputs import PortraitInputs, json_text
from omnicrm.portrait.interests import text_interests

__all__ = ["BASIS_SCHEMA", "interest_basis", "interest_texts"]

BASIS_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("interests", pa.list_(pa.string())),
        pa.field("top_interest", pa.string()),
        pa.field("interest_keywords", pa.list_(pa.string())),
        pa.field("hobbies", pa.list_(pa.string())),
        pa.field("hobby_keywords", pa.list_(pa.string())),
    ]
)


def interest_texts(inputs: PortraitInputs) -> pa.Table:
    """(customer_id, text, channel, at): search queries, titles of content viewed (``omnicrm.content``) and inbound
    messages, clerk notes included."""
    ev = inputs.events()
    searches = ev.filter(ev.event == "Products Searched").select(
        "customer_id", text=json_text(ev.properties, "query"), channel=ibis.literal("search"), at=ev.timestamp
    )
    viewed = ev.filter(ev.event == "Content Viewed").select(
        "customer_id", text=json_text(ev.properties, "title"), channel=ibis.literal("content"), at=ev.timestamp
    )
    m = inputs.messages()
    said = m.filter(m.direction == "inbound").select("customer_id", text=m.text, channel=m.channel, at=m.sent_at)
    texts = ibis.union(searches, viewed, said)
    return inputs.engine.to_arrow(texts.filter(texts.text.notnull() & (texts.text != "")))


def _summarise(found: pa.Table, prefix: str) -> pa.Table:
    con = duckdb.connect()
    con.register("found", found)
    return con.sql(
        f"""
        SELECT customer_id,
               list(interest_id ORDER BY score DESC, interest_id) AS {prefix}s,
               (list(interest_id ORDER BY score DESC, interest_id))[1] AS top_{prefix},
               list_sort(list_distinct(flatten(list(keywords)))) AS {prefix}_keywords
        FROM found GROUP BY customer_id
        """
    ).to_arrow_table()


def interest_basis(inputs: PortraitInputs) -> pa.Table:
    texts = interest_texts(inputs)
    if texts.num_rows == 0:
        return BASIS_SCHEMA.empty_table()
    every = text_interests(texts, as_of=inputs.as_of)
    notes = texts.filter(pa.compute.equal(texts["channel"], "clerk_note"))
    con = duckdb.connect()
    con.register("interests", _summarise(every, "interest"))
    con.register("hobbies", _summarise(text_interests(notes, as_of=inputs.as_of), "hobbie"))
    table = con.sql(
        """
        SELECT coalesce(i.customer_id, h.customer_id) AS customer_id, i.interests, i.top_interest,
               i.interest_keywords, h.hobbies, h.hobbie_keywords AS hobby_keywords
        FROM interests i FULL JOIN hobbies h USING (customer_id)
        ORDER BY customer_id
        """
    ).to_arrow_table()
    return table.cast(BASIS_SCHEMA)
