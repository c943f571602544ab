"""What a CapabilityStatement says of a type served from a FHIR store (mappings/facade/store_views.py), beside the
read-only types of other sources, and what a facade with a store adds at its base (batch, transaction, history)."""

from __future__ import annotations

STORE_KIND = "fhir-store"
READ_ONLY = {
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "versioning": "no-version",
    "readHistory": False,
}
STORED_TYPE = {
    "interaction": [
        {"code": code}
        for code in (
            "read",
            "vread",
            "update",
            "patch",
            "delete",
            "history-instance",
            "history-type",
            "create",
            "search-type",
        )
    ],
    "versioning": "versioned",
    "readHistory": True,
    "updateCreate": True,
    "conditionalCreate": True,
    "conditionalUpdate": True,
    "conditionalDelete": "single",
}
# At the base: batch and transaction Bundles (store_transactions.py) and the store's whole _history (store_views.py).
STORE_REST_INTERACTIONS = [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}]


def type_capability(source_kind: str) -> dict:
    return STORED_TYPE if source_kind == STORE_KIND else READ_ONLY
