"""Deterministic resolution: records joined through shared identifiers, with merge protection.

The graph is bipartite (records and identifier keys). Identifier types merge in stages, most trusted
first (``IdentifierType.priority``). After each stage every component the stage merged is checked
against the per-type limits (``IdentifierType.limit``: e.g. one member card per customer), the
operator's cannot-links and clearly different names; an identifier whose merge would break them
gives way — it stays attached to each of its holders but joins nobody ("shared"), which keeps a
family phone from merging a family. A key on the orders of many different buyers (a shop's own
phone) breaks the limits at once and so never merges anyone.

Everything runs on integer arrays (``omnicrm.identity.staged``): each stage joins only the keys that
two or more components hold, and measures the components it merged incrementally from the counts of
their parts, so the whole costs about two connected-components passes over the same edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.identity.identifiers import IDENTIFIER_TYPES
from omnicrm.identity.screen import restrict, screen, stage_codes
from omnicrm.identity.staged import Staged, resolve_staged

__all__ = ["Encoded", "Resolution", "encode", "resolve", "resolve_encoded"]

IntArray = np.ndarray


@dataclass
class Resolution:
    """Which component each record and identifier key belongs to, and why keys did or did not merge."""

    record_keys: pa.Array  # string, one per record
    record_comp: IntArray  # component label per record (labels are record indices)
    keys: pa.Array  # string, one per identifier key
    key_type: pa.Array  # its identifier type
    key_stage: IntArray  # priority of the stage that used it (-1: never a merge key)
    key_refusal: list[str | None]  # why a key was refused as a merge key, or None
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class Encoded:
    """The resolution problem as integers: occurrence pairs (record r holds key k) and per-key facts."""

    r: IntArray
    k: IntArray
    n_records: int
    key_type_code: IntArray  # index into ``limits`` (type and scope)
    limits: IntArray
    key_priority: IntArray  # merge stage of the key's type (-1: never merges)
    names: dict[int, str]  # name keys → normalised name, for the name veto
    must: tuple[IntArray, IntArray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # record pairs
    cannot: tuple[IntArray, IntArray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # key pairs
    extra: tuple[IntArray, IntArray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # record pairs


def _codes(values: pa.Array | pa.ChunkedArray) -> tuple[IntArray, pa.Array]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def encode(
    occurrences: pa.Table,
    *,
    must_link: Sequence[tuple[str, str]] = (),
    cannot_link: Sequence[tuple[str, str]] = (),
    extra_edges: tuple[pa.Array, pa.Array] | None = None,
) -> tuple[Encoded, pa.Array, pa.Array, pa.Array]:
    """The problem as integers, plus the record keys, identifier keys and key types they index."""
    valid = pc.is_valid(occurrences["key"])
    all_records, record_dict = _codes(occurrences["record_key"])
    usable = occurrences.filter(valid)
    r = all_records[valid.to_numpy(zero_copy_only=False)]
    k, key_dict = _codes(usable["key"])
    first_of_key = np.zeros(len(key_dict), dtype=np.int64)
    first_of_key[k[::-1]] = np.arange(len(k))[::-1]
    take = pa.array(first_of_key)
    key_types = pc.take(usable["id_type"], take).combine_chunks() if len(k) else pa.array([], pa.string())
    key_scopes = pc.take(usable["scope"], take).combine_chunks() if len(k) else pa.array([], pa.string())
    # limits hold per type and scope: one openid per app, two nicks per marketplace, ...
    type_scope = pc.binary_join_element_wise(key_types, key_scopes.fill_null(""), "|")
    key_type_code, type_scope_dict = _codes(type_scope)
    limits = np.array(
        [IDENTIFIER_TYPES[ts.split("|", 1)[0]].limit for ts in type_scope_dict.to_pylist()], dtype=np.int64
    )
    type_code, type_dict = _codes(key_types)
    priority_of = np.array(
        [IDENTIFIER_TYPES[t].priority if IDENTIFIER_TYPES[t].merges else -1 for t in type_dict.to_pylist()],
        dtype=np.int64,
    )
    name_keys: IntArray = (
        np.flatnonzero(pc.equal(key_types, "name").to_numpy(zero_copy_only=False)) if len(k) else np.zeros(0, np.int64)
    )
    name_values = pc.take(key_dict, pa.array(name_keys, pa.int64())).to_pylist()
    names = {int(i): str(v).split(":", 2)[2] for i, v in zip(name_keys, name_values, strict=True)}
    enc = Encoded(r, k, len(record_dict), key_type_code, limits, priority_of[type_code] if len(k) else type_code, names)
    if must_link or cannot_link:
        index = {key: i for i, key in enumerate(key_dict.to_pylist())}
        first_record = np.full(len(key_dict), -1, dtype=np.int64)
        first_record[k[::-1]] = r[::-1]
        must = [(index[a], index[b]) for a, b in must_link if a in index and b in index]
        enc.must = (first_record[[a for a, _ in must]], first_record[[b for _, b in must]])
        cannot = [(index[a], index[b]) for a, b in cannot_link if a in index and b in index]
        enc.cannot = (np.array([a for a, _ in cannot], np.int64), np.array([b for _, b in cannot], np.int64))
    if extra_edges is not None and len(extra_edges[0]):
        rec_index = {key: i for i, key in enumerate(record_dict.to_pylist())}
        enc.extra = (
            np.array([rec_index[x] for x in extra_edges[0].to_pylist()], dtype=np.int64),
            np.array([rec_index[x] for x in extra_edges[1].to_pylist()], dtype=np.int64),
        )
    return enc, record_dict, key_dict, key_types


def resolve_encoded(
    enc: Encoded, *, screening: bool = True
) -> tuple[IntArray, IntArray, list[str | None], dict[str, int]]:
    """(component per record, merge stage per key, refusal per key, stats) for an encoded problem.

    Envelopes that break no protection are customers as they are (``omnicrm.identity.screen``);
    the records of the others go through the stages (``omnicrm.identity.staged``). Without
    ``screening`` every record goes through the stages: the same answer, slower.
    """
    stages = sorted({t.priority for t in IDENTIFIER_TYPES.values() if t.merges})
    n_keys = len(enc.key_priority)
    code = stage_codes(enc.key_priority, stages)
    screened = screen(enc, code, len(stages))
    if not screening:
        screened.doubtful[:] = True
    comp = screened.comp
    key_stage = np.where(screened.present & (code < len(stages)), enc.key_priority, -1)
    refusal: list[str | None] = [None] * n_keys
    staged = Staged(comp, key_stage, {}, [0] * len(stages), 0)
    if screened.doubtful.any():
        sub, keys = restrict(enc, screened.doubtful)
        staged = resolve_staged(sub, stages)
        records = np.flatnonzero(screened.doubtful)
        comp[records] = records[staged.comp]
        key_stage[keys] = staged.key_stage
        for key, why in staged.refused.items():
            refusal[int(keys[key])] = why
    stats: dict[str, int] = {"records": enc.n_records, "keys": n_keys}
    if len(enc.must[0]):
        stats["must_link"] = len(enc.must[0])
    present = np.bincount(code[screened.present], minlength=len(stages) + 1)
    for s, priority in enumerate(stages):
        if present[s]:
            stage_name = "+".join(t.name for t in IDENTIFIER_TYPES.values() if t.priority == priority and t.merges)
            stats[f"stage {stage_name}: refused"] = staged.refused_by_stage[s]
    if len(enc.extra[0]):
        stats["probabilistic: refused"] = staged.probabilistic_refused
        stats["probabilistic: merged"] = len(enc.extra[0]) - staged.probabilistic_refused
    stats["customers"] = int(np.count_nonzero(comp == np.arange(enc.n_records)))
    return comp, key_stage, refusal, stats


def resolve(
    occurrences: pa.Table,
    *,
    must_link: Sequence[tuple[str, str]] = (),
    cannot_link: Sequence[tuple[str, str]] = (),
    extra_edges: tuple[pa.Array, pa.Array] | None = None,
) -> Resolution:
    """Join records through shared identifier keys, stage by stage, refusing merges that break limits.

    ``occurrences`` needs ``record_key``, ``id_type``, ``scope`` and ``key`` (null keys are ignored:
    they were refused at normalisation). ``must_link``/``cannot_link`` are pairs of keys from the
    operator; ``extra_edges`` are record-key pairs to join last (probabilistic matches), under the
    same protections.
    """
    enc, records, keys, key_types = encode(
        occurrences, must_link=must_link, cannot_link=cannot_link, extra_edges=extra_edges
    )
    comp, key_stage, refusal, stats = resolve_encoded(enc)
    return Resolution(records, comp, keys, key_types, key_stage, refusal, stats)
