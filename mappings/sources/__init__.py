"""Where a facade's source records come from when they are not stored in the studio: a legacy REST API (http) or a
database query (sql), asked on each FHIR request. Both return payloads (text) for the mapping to run on."""

from __future__ import annotations


class SourceError(Exception):
    """The legacy system could not answer: unreachable, refused, timed out or misconfigured."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
