"""A warm read's one statement on PostgreSQL: prepared by name once per connection and run through libpq, unless
something watches the connection's queries; it answers as the cursor path does, and a connection lost under it
answers 503 and is replaced at the next request, as any other query's."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils.http import http_date

from mappings import actions, caches
from mappings.actions.deployments import grow_generation
from mappings.facade import views
from mappings.facade.last_updated import instant
from mappings.models import Deployment, FacadeResource

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="libpq's prepared statements: PostgreSQL (CI)"),
]


@pytest.fixture
def clinic(served):
    caches.clear()
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    return {"deployment": live.pk, "id": FacadeResource.objects.get(deployment=live).resource_id}


def read(client, resource_id: str):
    return client.get(f"/fhir/clinic/Patient/{resource_id}")


def prepared_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return [name for (name,) in cursor.fetchall()]


def test_a_warm_read_runs_the_named_statement_and_answers_as_a_cursor_would(clinic, client) -> None:
    assert read(client, clinic["id"]).status_code == 200  # cold: this worker learns where Patient is served from
    assert read(client, clinic["id"]).json()["id"] == clinic["id"]  # warm: the named statement
    assert views.READ_STATEMENT.decode() in prepared_names()
    for resource_id, slug in [(clinic["id"], "clinic"), ("nobody", "clinic"), (clinic["id"], "no-such-facade")]:
        libpq = views._read_with_state(clinic["deployment"], "Patient", resource_id, slug)
        params = [clinic["deployment"], "Patient", resource_id, slug]
        assert libpq == views._fetch_one(views.READ_WITH_STATE, params)
    assert libpq is None  # no such facade: no row
    found = views._read_with_state(clinic["deployment"], "Patient", clinic["id"], "clinic")
    assert found[4].startswith("{") and found[5] is None  # staged as the deployment's own: no last_updated of its own


def test_a_read_whose_queries_are_watched_goes_through_a_cursor(clinic, client) -> None:
    assert read(client, clinic["id"]).status_code == 200
    with CaptureQueriesContext(connection) as seen:
        assert read(client, clinic["id"]).status_code == 200
    assert len(seen) == 1 and "LEFT JOIN" in seen[0]["sql"]


def test_a_warm_read_on_a_lost_connection_answers_503_then_reconnects(clinic, client) -> None:
    assert read(client, clinic["id"]).status_code == 200
    assert read(client, clinic["id"]).status_code == 200
    backend = connection.connection.info.backend_pid
    dsn = connection.connection.info.dsn
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    lost = read(client, clinic["id"])
    assert lost.status_code == 503 and lost["Retry-After"]
    assert lost.json()["issue"][0]["code"] == "transient"
    close_old_connections()  # what Django does between requests (the test client leaves it out)
    again = read(client, clinic["id"])
    assert again.status_code == 200 and again.json()["id"] == clinic["id"]
    assert connection.connection.info.backend_pid != backend


def test_a_row_staged_as_its_deployments_own_is_stamped_with_served_since_as_of_this_generation(clinic, client):
    deployment = Deployment.objects.select_related("binding").get(pk=clinic["deployment"])
    for served_since in [deployment.served_since, deployment.served_since + timedelta(hours=1, milliseconds=5)]:
        if served_since != deployment.served_since:  # as a swap does: served_since and the generation together
            with transaction.atomic():
                Deployment.objects.filter(pk=deployment.pk).update(served_since=served_since)
                grow_generation(deployment.binding.facade_id)
        for _ in range(2):  # cold, then warm (the statement, and served_since from this worker's memory)
            answer = read(client, clinic["id"])
            assert answer["Last-Modified"] == http_date(served_since.timestamp())
            assert answer.json()["meta"]["lastUpdated"] == instant(served_since)
