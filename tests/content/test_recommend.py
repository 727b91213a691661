"""Recommendations equal a plain pandas reference, on SQLite and PostgreSQL: a random portrait (interests per
customer), a library with live, draft, archived and not-yet-live items, and views that the per-person ranking must
leave out."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omnicrm.content.library import Item, create_item, live_items
from omnicrm.content.links import content_url
from omnicrm.content.recommend import rank_for_members, top_per_person
from omnicrm.content.views import record_view
from omnicrm.errors import InputError
from omnicrm.store.state import StateStore

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
SECRET = "a-long-test-secret-for-content-links"
TOPICS = ["baking", "coffee", "tea", "running", "yoga", "camping", "cats"]


def build(state: StateStore, folder: Path, seed: int) -> tuple[Path, pd.DataFrame, list[int]]:
    """A tags file, a library and views; returns (tags path, the views as (customer_id, item_id), the members)."""
    rng = random.Random(seed)
    people = list(range(1, 301))
    interests = [None if rng.random() < 0.15 else rng.sample(TOPICS, rng.randint(0, 3)) for _ in people]
    path = folder / "tags.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(people, pa.int64()),
                             "interests": pa.array(interests, pa.list_(pa.string()))}), path)  # fmt: skip
    for i in range(14):
        status = rng.choice(["published"] * 4 + ["draft", "archived"])
        start = NOW - timedelta(days=rng.choice([1, 2, 2, 5])) if i != 13 else NOW + timedelta(days=1)
        create_item(state, {"title_zh": f"第{i}篇", "url": f"https://shop.example.com/{i}", "status": status,
                            "topics": rng.sample(TOPICS, rng.randint(1, 2)), "publish_at": start},
                    by="test", now=NOW - timedelta(days=10))  # fmt: skip
    live = live_items(state, NOW)
    seen = []
    for _ in range(120):
        customer, item = rng.choice(people), rng.choice(live)
        token = content_url("https://crm.example", SECRET, item.id, customer_id=customer).rsplit("/", 1)[1]
        record_view(state, secret_key=SECRET, token=token, now=NOW)
        seen.append((customer, item.id))
    chosen = rng.sample(people, 180)
    members = [*chosen, 1000, 1001, *chosen[:5]]  # unknown ids and repeats too
    return path, pd.DataFrame(seen, columns=["customer_id", "item_id"]), members


def frames(path: Path, items: list[Item]) -> tuple[pd.DataFrame, pd.DataFrame]:
    tags = pq.read_table(path).to_pandas()
    lib = pd.DataFrame({"item_id": [i.id for i in items], "topics": [list(i.topics) for i in items],
                        "publish_at": [i.publish_at for i in items]})  # fmt: skip
    return tags, lib


def reference_segment(tags: pd.DataFrame, lib: pd.DataFrame, views: pd.DataFrame, members: list[int],
                      limit: int) -> tuple[int, list[tuple[Any, ...]]]:  # fmt: skip
    m = set(members)
    mi = tags[tags.customer_id.isin(m)].explode("interests").dropna(subset=["interests"])
    it = lib.explode("topics")
    hits = it.merge(mi, left_on="topics", right_on="interests")[["item_id", "customer_id"]].drop_duplicates()
    matches = hits.groupby("item_id").customer_id.nunique().rename("matches")
    viewed = views[views.customer_id.isin(m)].drop_duplicates().groupby("item_id").customer_id.nunique()
    out = lib.set_index("item_id").join(matches, how="inner").join(viewed.rename("viewed")).fillna({"viewed": 0})
    out = out.reset_index().assign(ts=lambda d: d.publish_at.map(lambda t: -t.timestamp()))
    out = out.sort_values(["matches", "ts", "item_id"], ascending=[False, True, True]).head(limit)
    return len(m), [(r.item_id, r.matches, r.matches / len(m), r.viewed) for r in out.itertuples()]


def reference_people(tags: pd.DataFrame, lib: pd.DataFrame, views: pd.DataFrame, customers: list[int],
                     n: int) -> list[dict[str, int]]:  # fmt: skip
    pairs = []
    own = {r.customer_id: list(r.interests) for r in tags.itertuples() if r.customer_id in set(customers)
           and r.interests is not None}  # fmt: skip
    for customer, theirs in own.items():
        for item in lib.itertuples():
            common = set(theirs) & set(item.topics)
            if common:
                best = min(theirs.index(t) + 1 for t in common)
                pairs.append((customer, item.item_id, len(common), best, item.publish_at))
    df = pd.DataFrame(pairs, columns=["customer_id", "item_id", "overlap", "best", "publish_at"])
    audience = df.groupby("item_id").customer_id.nunique().rename("audience")
    df = df.join(audience, on="item_id")
    seen = set(map(tuple, views[["customer_id", "item_id"]].to_numpy().tolist()))
    df = df[[(c, i) not in seen for c, i in zip(df.customer_id, df.item_id, strict=True)]]
    df = df.assign(ts=df.publish_at.map(lambda t: -t.timestamp()))
    df = df.sort_values(["customer_id", "overlap", "best", "audience", "ts", "item_id"],
                        ascending=[True, False, True, False, True, True])  # fmt: skip
    df["rank"] = df.groupby("customer_id").cumcount() + 1
    df = df[df["rank"] <= n]
    return [{"customer_id": int(r.customer_id), "rank": int(r.rank), "item_id": int(r.item_id),
             "overlap": int(r.overlap)} for r in df.itertuples()]  # fmt: skip


@pytest.mark.timeout(300)
def test_recommendations_equal_a_pandas_reference(state: StateStore, tmp_path: Path) -> None:
    path, views, members = build(state, tmp_path, seed=20261120)
    items = live_items(state, NOW)
    assert 5 <= len(items) < 14, "the library has items that are not live"
    tags, lib = frames(path, items)
    for limit in (3, 100):
        count, ranked = rank_for_members(state, tags=path, members=pa.table({"customer_id": members}), limit=limit,
                                         now=NOW)  # fmt: skip
        want_count, want = reference_segment(tags, lib, views, members, limit)
        assert count == want_count == 182
        got = [(r.item.id, r.matches, r.share, r.viewed) for r in ranked]
        assert got == want and len(got) == min(limit, len(want))
        assert all(r.item.live(NOW) for r in ranked)
    customers = members[:120]
    for n in (1, 3):
        top = top_per_person(state, tags=path, customers=pa.table({"customer_id": customers}), n=n, now=NOW)
        want_people = reference_people(tags, lib, views, customers, n)
        assert top.to_pylist() == want_people and len(want_people) > 50
    assert not set(map(tuple, views.to_numpy().tolist())) & {(r["customer_id"], r["item_id"]) for r in
                                                            top.to_pylist()}, "viewed items are left out"  # fmt: skip


def test_limits_are_checked(state: StateStore, tmp_path: Path) -> None:
    path = tmp_path / "tags.parquet"
    pq.write_table(pa.table({"customer_id": pa.array([1], pa.int64()),
                             "interests": pa.array([["tea"]], pa.list_(pa.string()))}), path)  # fmt: skip
    with pytest.raises(InputError) as exc:
        rank_for_members(state, tags=path, members=pa.table({"customer_id": [1]}), limit=0)
    assert exc.value.problems[0].field == "limit"
    with pytest.raises(InputError) as exc:
        top_per_person(state, tags=path, customers=pa.table({"id": [1]}), n=3)
    assert exc.value.problems[0].field == "customer_id"
    assert rank_for_members(state, tags=path, members=pa.table({"customer_id": [1]}), now=NOW) == (1, [])
