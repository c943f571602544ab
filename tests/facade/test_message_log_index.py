"""The message log of a deploy's index build: a stored record that does not index is logged (channel index) with its
key, error and payload; records that index are not (every deploy indexes every record again)."""

from __future__ import annotations

import pytest

from mappings import actions, message_log
from mappings.models import ProcessedMessage
from tests.facade.conftest import PATIENT

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_logs_the_records_an_index_build_could_not_map(served) -> None:
    message_log.discard()
    author = served["author"]
    bad = PATIENT.replace('"FirstName": "Jerry"', '"FirstName": {"not": "a name"}')
    actions.do_upload_records(served["source"], acting_user=author, records=[("r3", bad)])
    actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    failed = ProcessedMessage.objects.get()  # r1 and r2 indexed: not logged
    assert (failed.channel, failed.facade_slug, failed.mapping_slug, failed.version_number) == (
        "index",
        "clinic",
        "json-patient",
        1,
    )
    assert (failed.status, failed.record_key, failed.source_format) == ("failed", "r3", "json")
    assert failed.error_code.startswith("FS-VAL") and failed.outcome["resourceType"] == "OperationOutcome"
    assert failed.payload == bad
