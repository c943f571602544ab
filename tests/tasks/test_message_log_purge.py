"""The message log's retention on a real Celery worker: the beat-scheduled task deletes the rows older than
FHIR_STUDIO_MESSAGE_RETENTION_DAYS as the worker's environment sets it, and nothing newer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fhirstudio.celery import app
from mappings.models import AuditAction, AuditEvent, ProcessedMessage
from mappings.tasks import purge_messages
from tests.conftest import worker_database_url
from tests.tasks.conftest import running_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_the_beat_schedule_purges_the_log_every_hour() -> None:
    entry = app.conf.beat_schedule["purge-messages"]
    assert (entry["task"], entry["schedule"]) == ("mappings.tasks.purge_messages", 3600.0)


def test_a_worker_purges_rows_past_the_retention_it_is_configured_with(tmp_path) -> None:
    now = timezone.now()
    for days, key in ((3, "three-days"), (1, "one-day"), (0, "today")):
        ProcessedMessage.objects.create(
            channel="batch",
            mapping_slug="adt-patient",
            status="failed",
            record_key=key,
            payload="MSH|^~\\&|…",
            created_at=now - timedelta(days=days, minutes=1),
        )
    env = {"DATABASE_URL": worker_database_url(), "FHIR_STUDIO_MESSAGE_RETENTION_DAYS": "2"}
    with running_worker(tmp_path / "worker.log", env, queues="default"):
        assert purge_messages.delay().get(timeout=60) == 1
    assert sorted(ProcessedMessage.objects.values_list("record_key", flat=True)) == ["one-day", "today"]
    assert AuditEvent.objects.get(action=AuditAction.MESSAGES_PURGED).after == {"deleted": 1}
