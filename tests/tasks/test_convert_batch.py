"""Batch conversion through a real Celery worker on the configured broker (Redis in CI, the file-system broker
otherwise): the task travels, runs the engine in the worker and its results come back."""

import pytest
from django.conf import settings

from mappings.conversions import convert_batch_direct
from mappings.tasks import convert_batch
from tests.tasks.conftest import celery_worker

GOOD = '{"MRN": "A1", "LastName": "Ng", "FirstName": "Li", "Gender": "F", "DOB": "19900102"}'
BAD = '{"MRN": '


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    with celery_worker(tmp_path_factory.mktemp("worker") / "worker.log") as log:
        yield log


def test_it_converts_a_batch_directly_one_result_per_payload() -> None:
    results = convert_batch_direct("json-patient", [GOOD, BAD])
    assert [result["ok"] for result in results] == [True, False]
    assert results[0]["output"]["name"][0]["family"] == "Ng"
    assert results[1]["issues"]["issue"][0]["details"]["coding"][0]["code"] == "FS-SRC-020"


def test_it_answers_an_unknown_mapping_with_an_issue_per_payload() -> None:
    results = convert_batch_direct("no-such-mapping", [GOOD, GOOD])
    assert [result["issues"]["issue"][0]["details"]["coding"][0]["code"] for result in results] == ["FS-TPL-002"] * 2


def test_it_runs_the_batch_in_a_real_worker(worker) -> None:
    async_result = convert_batch.delay("json-patient", [GOOD, BAD])
    results = async_result.get(timeout=60)
    assert [result["ok"] for result in results] == [True, False]
    assert results[0]["output"]["gender"] == "female"
    assert settings.CELERY_BROKER_URL.split(":")[0] in ("redis", "filesystem", "amqp")
