"""Batch conversion through a real Celery worker on the configured broker (Redis in CI, the file-system broker
otherwise): the task carries only ids (a published version, a stored data source), the worker reads the payloads
from the database, and the answer is a summary, never the patient data."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from mappings import actions
from mappings.jobs.batch import convert_batch_direct
from mappings.models import Mapping
from mappings.tasks import convert_batch
from tests.conftest import worker_database_url
from tests.tasks.conftest import celery_worker

GOOD = '{"MRN": "A1", "LastName": "Ng", "FirstName": "Li", "Gender": "F", "DOB": "19900102"}'
BAD = '{"MRN": '


@pytest.fixture
def batch_source(transactional_db):
    """json-patient v1 (from the demo content) and a stored source with one good and one broken record."""
    from mappings.demo import load_demo

    admin = User.objects.create_superuser("admin", password="pw")
    load_demo(admin)
    version = Mapping.objects.select_related("latest_version").get(slug="json-patient").latest_version
    source = actions.do_create_data_source(acting_user=admin, name="registrations", source_format="json")
    actions.do_upload_records(source, acting_user=admin, records=[("good", GOOD), ("bad", BAD)])
    return version, source


def test_it_converts_every_record_of_a_source_and_lists_the_failures(batch_source) -> None:
    version, source = batch_source
    summary = convert_batch_direct(version.pk, source.pk)
    assert summary == {
        "mapping": "json-patient",
        "version": version.number,
        "records": 2,
        "converted": 1,
        "failed": 1,
        "failures": [{"record": "bad", "code": "FS-SRC-020", "message": summary["failures"][0]["message"]}],
    }


def test_it_runs_the_batch_in_a_real_worker_from_ids(batch_source, tmp_path) -> None:
    version, source = batch_source
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": worker_database_url()}):
        async_result = convert_batch.delay(version.pk, source.pk)
        summary = async_result.get(timeout=60)
    assert (summary["converted"], summary["failed"]) == (1, 1)
    assert "Ng" not in json.dumps(summary)  # what comes back holds no patient data
