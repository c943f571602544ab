"""A deployment over a big stored source is indexed by a real Celery worker (the index_deployment task), and the
facade keeps serving the previous deployment until the new index is ready."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection

from mappings import actions
from mappings.facade import indexing
from mappings.facade.views import forget_live_deployments
from mappings.models import Deployment
from tests.tasks.conftest import celery_worker

RECORD = '{{"MRN": "M{n}", "LastName": "Ng{n}", "FirstName": "Li", "Gender": "F", "DOB": "19900102"}}'


def _database_url() -> str:
    """The test database itself (pytest-django's test_… name), so the worker sees what the test committed."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("postgresql"):
        return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    return f"sqlite:///{Path(settings['NAME']).resolve()}"


@pytest.fixture
def worker(transactional_db, tmp_path):
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": _database_url()}) as log:
        yield log


def test_a_big_source_is_indexed_by_the_worker_while_the_old_deployment_serves(worker, client, monkeypatch) -> None:
    from mappings.demo import load_demo

    admin = User.objects.create_superuser("admin", password="pw")
    load_demo(admin)
    mapping = actions.Mapping.objects.select_related("latest_version").get(slug="json-patient")
    source = actions.do_create_data_source(acting_user=admin, name="registrations", source_format="json")
    actions.do_upload_records(source, acting_user=admin, records=[("r0", RECORD.format(n=0))])
    facade = actions.do_create_facade(acting_user=admin, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    first = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    assert first.ready and first.indexed == 1

    monkeypatch.setattr(indexing, "INLINE_RECORDS", 5)  # so 20 records count as big
    actions.do_upload_records(source, acting_user=admin, records=[(f"r{n}", RECORD.format(n=n)) for n in range(1, 20)])
    second = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    assert not Deployment.objects.get(pk=second.pk).ready  # queued for the worker, not indexed in the request
    forget_live_deployments()
    deadline = time.monotonic() + 60
    while not Deployment.objects.get(pk=second.pk).ready and time.monotonic() < deadline:
        time.sleep(0.3)
    second.refresh_from_db()
    assert second.ready and second.indexed == 20, worker.read_text()[-2000:]
    forget_live_deployments()
    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == 20
