"""The one exception of the FHIR client: a stable code a caller (and the studio's connection test) can react to, the
HTTP status when there was an answer, and the server's OperationOutcome when it sent one."""

from __future__ import annotations

# Codes for failures before any answer, then for answers, in the order a connection test meets them.
TRANSPORT_CODES = ("host_refused", "redirect_refused", "dns_failed", "refused", "tls_failed", "timeout", "unreachable")
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "unauthorized",
    404: "not_found",
    405: "not_supported",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    422: "unprocessable",
    429: "too_many_requests",
}


class FhirError(Exception):
    def __init__(self, code: str, message: str, *, status: int | None = None, outcome: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.outcome = outcome

    def __repr__(self) -> str:
        return f"FhirError({self.code!r}, {self.message!r}, status={self.status})"


def code_of_status(status: int) -> str:
    if status >= 500:
        return "server_error"
    return STATUS_CODES.get(status, "http_error")


def outcome_text(outcome: dict | None) -> str:
    """The first issue's words (diagnostics or details.text), to put in a message."""
    issues = (outcome or {}).get("issue") or []
    for issue in issues:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                return str(text)
    return ""
