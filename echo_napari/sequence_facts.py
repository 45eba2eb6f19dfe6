"""The scalar facts of a sequence as a plain dict, kept in napari layer metadata so a
layer carries its sequence's spacing, phases, keyframes and provenance. No Qt, no napari."""

from __future__ import annotations

from typing import Any

from echo_napari.sequence import EchoSequence, FrameProvenance, ProvenanceKind

__all__ = ["provenance_from_facts", "sequence_facts"]


def sequence_facts(sequence: EchoSequence) -> dict[str, Any]:
    """The scalar facts of a sequence as a plain dict (for napari layer metadata).

    Returns
    -------
    dict
        ``spacing`` ((dy, dx) mm or None), ``frame_time_ms``, ``view``, ``ed_index``,
        ``es_index``, ``keyframes`` (sorted list), ``provenance`` (list of
        ``{"kind", "model", "version"}``), ``metadata`` (the sequence's free-form dict).
    """
    return {
        "spacing": None if sequence.spacing is None else tuple(map(float, sequence.spacing)),
        "frame_time_ms": sequence.frame_time_ms,
        "view": sequence.view,
        "ed_index": sequence.ed_index,
        "es_index": sequence.es_index,
        "keyframes": sorted(int(k) for k in sequence.keyframes),
        "provenance": [
            {"kind": p.kind.value, "model": p.model, "version": p.version}
            for p in sequence.provenance
        ],
        "metadata": dict(sequence.metadata),
    }


def provenance_from_facts(facts: dict[str, Any], n_frames: int) -> list[FrameProvenance]:
    """Inverse of the ``provenance`` entry of :func:`sequence_facts` (length-checked)."""
    entries = facts.get("provenance") or []
    if len(entries) != n_frames:
        return [FrameProvenance()] * n_frames
    return [
        FrameProvenance(ProvenanceKind(e["kind"]), e.get("model", ""), e.get("version", ""))
        for e in entries
    ]
