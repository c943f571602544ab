"""What a push sends for each kind of output (mappings/connectors/bundles.py), and how each entry's answer is read."""

from __future__ import annotations

import pytest

from mappings.connectors import as_bundle, entry_results

PATIENT = {"resourceType": "Patient", "id": "p1"}
NEW = {"resourceType": "Observation", "status": "final"}


@pytest.mark.parametrize(
    ("output", "kind", "requests"),
    [
        (PATIENT, "transaction", [("PUT", "Patient/p1")]),
        (NEW, "batch", [("POST", "Observation")]),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": PATIENT}, {"resource": NEW}, {}]},
            "transaction",
            [("PUT", "Patient/p1"), ("POST", "Observation")],
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}}, {"resource": NEW}],
            },
            "batch",
            [("POST", "Patient"), ("POST", "Observation")],
        ),
    ],
)
def test_it_turns_each_kind_of_output_into_entries_with_requests(output, kind, requests) -> None:
    bundle = as_bundle(output, kind)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == kind
    assert [(entry["request"]["method"], entry["request"]["url"]) for entry in bundle["entry"]] == requests


def test_it_keeps_full_urls_so_references_resolve() -> None:
    output = {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1", "resource": NEW}]}
    assert as_bundle(output, "transaction")["entry"][0]["fullUrl"] == "urn:uuid:1"


def test_it_refuses_a_kind_that_is_not_transaction_or_batch() -> None:
    with pytest.raises(ValueError, match="transaction or a batch"):
        as_bundle(PATIENT, "collection")


def test_it_reads_each_entrys_status_and_outcome() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
    response = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "201 Created", "location": "Patient/p1/_history/1", "etag": 'W/"1"'}},
            {"response": {"status": "422 Unprocessable Entity", "outcome": outcome}},
            {"resource": outcome, "response": {"status": "400 Bad Request"}},
        ],
    }
    first, second, third = entry_results(response)
    assert first.ok and first.location == "Patient/p1/_history/1" and first.outcome is None
    assert not second.ok and second.outcome == outcome
    assert not third.ok and third.outcome == outcome  # some servers put it in the entry's resource
