"""What every command needs: settings, the state store and the facts store, built once per run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from rich.console import Console

from omnicrm.settings import Settings, get_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

if TYPE_CHECKING:
    from omnicrm.campaigns.launch import Marketing

__all__ = ["Context", "console", "err_console"]

console = Console()
err_console = Console(stderr=True)


@dataclass
class Context:
    settings: Settings

    @classmethod
    def load(cls) -> Context:
        return cls(settings=get_settings())

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.settings.state_database_url)

    @cached_property
    def facts(self) -> FactsStore:
        return FactsStore(self.settings.facts_dir)

    @cached_property
    def derived(self) -> DerivedStore:
        return DerivedStore(self.settings.derived_dir)

    def marketing(self) -> Marketing:
        """The campaign system with the configured channels; use it in a ``with`` block."""
        from omnicrm.campaigns.launch import Marketing

        return Marketing.of(self.settings, self.state)

    @cached_property
    def engine(self) -> Engine:
        if self.settings.engine == "spark":
            from omnicrm.identity.probabilistic import spark_jar_path
            from omnicrm.store.engine import spark_session

            return Engine(self.facts, kind="spark", spark=spark_session(jars=[spark_jar_path()]))
        return Engine(self.facts)
