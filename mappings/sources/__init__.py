"""Where a facade's source records come from when they are not stored in the studio: a legacy REST API (http) or a
database query (sql), asked on each FHIR request. Both return payloads (text) for the mapping to run on."""

from __future__ import annotations


class SourceError(Exception):
    """The legacy system could not answer: unreachable, refused, timed out or misconfigured."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def live_type_filter_error(resource_type: str, source_kind: str) -> str | None:
    """Why `$export`'s `_typeFilter` cannot apply to this type (None: it can). A live source is only listed, never
    searched, during an export, so a filter would be silently ignored: the kick-off refuses it (or drops it when
    lenient)."""
    if source_kind in ("stored", "fhir-store"):  # served from an index, which a filter searches
        return None
    return (
        f"_typeFilter: {resource_type} comes from a live {source_kind} source, which exports all its records "
        "and cannot filter them."
    )
