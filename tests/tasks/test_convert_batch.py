"""Batch conversion through a real Celery worker on the configured broker (Redis in CI, the file-system broker
otherwise): the task travels, runs the engine in the worker and its results come back."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from mappings.conversions import convert_batch_direct
from mappings.tasks import convert_batch

ROOT = Path(__file__).resolve().parents[2]
GOOD = '{"MRN": "A1", "LastName": "Ng", "FirstName": "Li", "Gender": "F", "DOB": "19900102"}'
BAD = '{"MRN": '


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "fhirstudio",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-Q",
                "batch",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    yield process
    process.terminate()
    process.wait(timeout=30)


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
