"""A facade read, the facade's hot path: once a worker has served a type, a read is one SQL statement (the facade's
state and the resource together), yet it still sees a deploy, a pause or a protected facade on its very next
request, and it answers past the studio's middleware with the same headers. Its access-log rows wait as tuples and
are written in batches."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions, caches
from mappings.facade import request_log
from mappings.models import FacadeRequest, FacadeResource

# Transactional: a deploy indexes once its transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clinic(served):
    """The `served` binding with v1 deployed (one patient), and v2 (active false) published, not live."""
    author, mapping = served["author"], served["mapping"]
    caches.clear()
    live = actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    mapping.refresh_from_db()
    changed = mapping.draft.template.replace('"active": true', '"active": false')
    actions.do_save_draft(mapping, acting_user=author, template=changed, expected_revision=mapping.draft.revision)
    for sample in mapping.samples.all():
        actions.do_update_sample(sample, acting_user=author, expected=None, assertions=["Patient.active = false"])
    v2 = actions.do_publish_version(mapping, acting_user=author, message="v2")
    patient = FacadeResource.objects.get(deployment=live).resource_id
    return {"author": author, "facade": served["binding"].facade, "binding": served["binding"], "v2": v2, "id": patient}


def read(client, resource_id: str):
    return client.get(f"/fhir/clinic/Patient/{resource_id}")


def test_a_warm_read_is_one_statement_found_or_not(clinic, client) -> None:
    patient = clinic["id"]
    assert read(client, patient).status_code == 200  # this worker learns where Patient is served from
    with CaptureQueriesContext(connection) as found:
        assert read(client, patient).json()["id"] == patient
    with CaptureQueriesContext(connection) as missing:
        answer = read(client, "nobody")
    assert answer.status_code == 404 and answer.json()["resourceType"] == "OperationOutcome"
    assert [len(found), len(missing)] == [1, 1], [q["sql"] for q in [*found, *missing]]


def test_a_read_serves_a_deploy_made_since_the_last_one(clinic, client) -> None:
    patient = clinic["id"]
    assert read(client, patient).json()["active"] is True
    actions.do_deploy(clinic["binding"], acting_user=clinic["author"], version=clinic["v2"])
    with CaptureQueriesContext(connection) as after_deploy:
        assert read(client, patient).json()["active"] is False  # not v1's row, which the guess pointed at
    assert len(after_deploy) > 1  # the guess was checked, found stale, and the read done again
    with CaptureQueriesContext(connection) as settled:
        assert read(client, patient).json()["active"] is False
    assert len(settled) == 1


def test_a_warm_read_sees_a_pause_and_a_protected_facade_at_once(clinic, client) -> None:
    patient, facade = clinic["id"], clinic["facade"]
    assert read(client, patient).status_code == 200
    actions.do_update_facade(facade, acting_user=clinic["author"], status="paused")
    paused = read(client, patient)
    assert paused.status_code == 503 and paused.json()["issue"][0]["code"] == "transient"
    actions.do_update_facade(facade, acting_user=clinic["author"], status="active")
    assert read(client, patient).status_code == 200
    facade.refresh_from_db()
    facade.auth_mode = "smart-backend"
    facade.save(update_fields=["auth_mode"])  # no generation grown: the state is read with every resource
    refused = read(client, patient)
    assert refused.status_code == 401 and refused.json()["issue"][0]["code"] == "security"


def test_a_read_skips_the_studio_middleware_and_keeps_their_headers(clinic, client) -> None:
    answer = read(client, clinic["id"])
    assert answer.status_code == 200
    assert not hasattr(answer.wsgi_request, "user")  # AuthenticationMiddleware never ran
    assert not hasattr(answer.wsgi_request, "session")
    assert answer["Content-Length"] == str(len(answer.content))
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware runs first, as for every request
    assert "Set-Cookie" not in answer and "Cookie" not in answer.get("Vary", "")
    # A /fhir/ URL that names no facade route still gets Django's own 404, down the whole stack.
    nothing = client.get("/fhir/")
    assert nothing.status_code == 404 and hasattr(nothing.wsgi_request, "user")


def test_the_access_log_writes_waiting_rows_in_batches(db) -> None:
    request_log.discard()
    # More rows than a batch at once, as threads adding past a full batch leave them.
    rows = [
        ("clinic", "Patient", "read", 200 + number % 2, 1.5, request_log.timezone.now())
        for number in range(request_log.BATCH_ROWS + 50)
    ]
    with CaptureQueriesContext(connection) as inserts:
        request_log.buffer.write(rows)
    # One COPY on PostgreSQL (run on psycopg's cursor: not in Django's query log), else an INSERT per 200 rows.
    assert len(inserts) == (0 if connection.vendor == "postgresql" else 2)
    rows = FacadeRequest.objects.order_by("id")
    assert rows.count() == request_log.BATCH_ROWS + 50
    first = rows.first()
    assert (first.facade_slug, first.resource_type, first.interaction, first.status, first.latency_ms) == (
        "clinic",
        "Patient",
        "read",
        200,
        1.5,
    )
    assert first.created_at.tzinfo is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL (CI)")
def test_postgresql_prepares_the_read_after_a_few_runs_and_plans_it_no_more(clinic, client) -> None:
    for _ in range(8):  # psycopg prepares a statement on its run after the fifth
        assert read(client, clinic["id"]).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any("LEFT JOIN" in statement and "f.generation" in statement for statement in prepared), prepared
