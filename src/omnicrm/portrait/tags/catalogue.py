"""The built-in tag catalogue: who customers are (``profile``) and how they behave (``behaviour``)."""

from __future__ import annotations

from omnicrm.portrait.tags.behaviour import BEHAVIOUR
from omnicrm.portrait.tags.model import TagDefinition
from omnicrm.portrait.tags.profile import AGE_BANDS, LIFECYCLE_STAGES, PROFILE, RFM_SEGMENTS

__all__ = ["AGE_BANDS", "BUILTIN", "LIFECYCLE_STAGES", "RFM_SEGMENTS"]

BUILTIN: tuple[TagDefinition, ...] = (*PROFILE, *BEHAVIOUR)
