"""The demo merchant: simulate a fashion brand's exports, import them, load the events.

Used by ``omnicrm demo`` (and so ``make demo``): a fresh data folder becomes a working merchant in
about a minute. Running it again over the same folder is cheap — the imports are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omnicrm.customers.timeline import refresh_timeline
from omnicrm.identity.refresh import refresh_identity
from omnicrm.ingest.importer import ImportSummary, import_file
from omnicrm.ingest.loader import LoadResult, load
from omnicrm.ingest.sources import create_source, list_sources
from omnicrm.portrait.refresh import refresh_portrait
from omnicrm.simulate import simulate
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

__all__ = ["DEMO_FILES", "DEMO_SOURCES", "DEMO_USERS", "DemoResult", "demo_users", "load_demo", "refresh_demo"]

# Each simulated export, the source (channel) it belongs to, the import kind and the shipped mapping.
DEMO_FILES: tuple[tuple[str, str, str, str], ...] = (
    ("members.csv", "crm", "customers", "members"),
    ("wechat_followers.csv", "wechat-oa", "customers", "wechat_followers"),
    ("tmall_orders.csv", "tmall", "orders", "tmall_orders"),
    ("jd_orders.csv", "jd", "orders", "jd_orders"),
    ("pos_sales.csv", "pos", "orders", "pos_sales"),
    ("events_web.jsonl", "web", "events", "segment_events"),
    ("events_miniprogram.jsonl", "wechat-mp", "events", "segment_events"),
    ("messages.jsonl", "service", "messages", "messages"),
)

# Sources of the demo merchant, with write keys that are public on purpose (it is a demo).
DEMO_SOURCES: tuple[tuple[str, str], ...] = (
    ("crm", "import"),
    ("wechat-oa", "wechat"),
    ("wechat-mp", "app"),
    ("tmall", "marketplace"),
    ("jd", "marketplace"),
    ("pos", "pos"),
    ("web", "web"),
    ("service", "service"),
)


def demo_write_key(source: str) -> str:
    return f"wk_demo_{source.replace('-', '_')}"


@dataclass
class DemoResult:
    exports: Path
    imports: list[tuple[str, ImportSummary]] = field(default_factory=list)
    loaded: LoadResult | None = None


def load_demo(
    state: StateStore,
    facts: FactsStore,
    *,
    data_dir: Path,
    people: int = 20_000,
    seed: int = 1,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Simulate (once per people/seed) and import the demo merchant into ``state`` and ``facts``."""
    exports = data_dir / "demo-exports" / f"people-{people}-seed-{seed}"
    if not (exports / "manifest.json").exists():
        say(f"simulating the demo merchant: {people:,} people (seed {seed})…")
        simulate(exports, people=people, seed=seed, progress=progress)
    existing = {s.name for s in list_sources(state)}
    for name, kind in DEMO_SOURCES:
        if name not in existing:
            # the demo shop's web and mini-program logins are membership card numbers
            user_id_type = "member_card" if name in ("web", "wechat-mp") else None
            create_source(state, name, kind, write_key=demo_write_key(name), user_id_type=user_id_type)
    result = DemoResult(exports=exports)
    for file_name, source, kind, mapping in DEMO_FILES:
        summary = import_file(
            state, facts, source=source, path=exports / file_name, kind=kind, mapping=mapping, progress=progress
        )
        result.imports.append((file_name, summary))
    result.loaded = load(state, facts)
    return result


def refresh_demo(
    state: StateStore, facts: FactsStore, derived: DerivedStore, say: Callable[[str], None] = print
) -> str:
    """Run the derived pipeline (OneID, the portrait, the timeline) over the demo merchant; lines to show."""
    engine = Engine(facts)
    refreshed = refresh_identity(state, engine, derived, say=say)
    portrait = refresh_portrait(state, engine, derived, say=say)
    timeline = refresh_timeline(engine, derived, say=say)
    return (
        f"OneID: {refreshed.customers:,} customers from {refreshed.records:,} records in {refreshed.seconds:.0f}s\n"
        f"portrait: {portrait.tags} tags for {portrait.customers:,} customers in {portrait.seconds:.0f}s\n"
        f"timeline: {timeline.rows:,} rows for {timeline.customers:,} customers in {timeline.seconds:.0f}s"
    )


DEMO_USERS = {"admin": "admin", "marketer": "marketer", "agent": "service_agent", "clerk": "store_clerk"}


def demo_users(state: StateStore, data_dir: Path) -> dict[str, str]:
    """One console user per role, with passwords generated once and kept in ``demo-users.txt`` (owner-only)."""
    import os
    import secrets

    from omnicrm.access.users import create_user, list_users

    path = Path(data_dir) / "demo-users.txt"
    if path.exists():
        pairs = (line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if " " in line)
        return {name: password for name, password in pairs}
    existing = {u.username for u in list_users(state)}
    passwords = {name: secrets.token_urlsafe(9) for name in DEMO_USERS if name not in existing}
    for name, password in passwords.items():
        create_user(state, name, password, DEMO_USERS[name], display_name=f"demo {name}")
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text("".join(f"{n} {p}\n" for n, p in passwords.items()), encoding="utf-8")
    return passwords
