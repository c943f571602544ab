"""Bulk Data `$export` with the jobs storage on S3 (FHIR_STUDIO_JOB_STORAGE=s3): a real S3-compatible server (moto's
server mode) on loopback, a real worker writing the NDJSON files into the bucket, the facade streaming them back from
the bucket, and DELETE removing them from it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import boto3
import orjson
import pytest
import requests

from mappings.models import ExportJob, FacadeResource
from tests.conftest import worker_database_url
from tests.legacy_http import free_port
from tests.tasks.conftest import celery_worker

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto_server on a free loopback port, for this module's tests."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(endpoint, timeout=5)
            break
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still starting on a busy machine
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server did not start:\n{log.read_text()}")
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A new bucket, made the jobs storage of this process (the live server) and of the worker (its env)."""
    name = f"exports-{uuid.uuid4().hex[:12]}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, **CREDENTIALS).Bucket(name)
    s3.create()
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": s3_endpoint,
                "bucket_name": name,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": True,
                "default_acl": None,
            },
        },
    }  # the setting_changed signal empties Django's storages cache, so job_storage() is the S3 one from here
    env = {
        "FHIR_STUDIO_JOB_STORAGE": "s3",
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_STORAGE_BUCKET_NAME": name,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    return s3, env


@pytest.fixture
def worker(demo, bucket, tmp_path):
    _, storage_env = bucket
    env = {"DATABASE_URL": worker_database_url(), **storage_env}
    with celery_worker(tmp_path / "worker.log", env, queues="exports,default") as log:
        yield log


def finished(status_url: str, worker_log) -> requests.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = requests.get(status_url, timeout=10)
        if response.status_code != 202:
            return response
        time.sleep(0.2)
    pytest.fail(f"the export did not finish:\n{worker_log.read_text()[-3000:]}")


def keys(s3) -> set[str]:
    return {stored.key for stored in s3.objects.all()}


def test_it_exports_into_the_bucket_streams_from_it_and_deletes_from_it(demo, bucket, worker) -> None:
    s3, _ = bucket
    started = requests.get(f"{demo['base']}/$export?_type=Patient,Encounter", headers=ASYNC, timeout=10)
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    done = finished(status_url, worker)
    assert done.status_code == 200, (done.text, worker.read_text()[-3000:])
    manifest = done.json()
    job = ExportJob.objects.get()
    names = {file["name"] for chunk in job.chunks.all() for file in chunk.files}
    assert {entry["type"] for entry in manifest["output"]} == {"Patient", "Encounter"}
    assert names and keys(s3) == names  # every file the manifest lists is an object of the bucket, and nothing else

    for entry in manifest["output"]:
        with requests.get(entry["url"], stream=True, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/fhir+ndjson"
            body = b"".join(response.iter_content(chunk_size=64 * 1024))
        stored = s3.Object(f"{job.storage_prefix}{entry['url'].rsplit('/', 1)[1]}").get()["Body"].read()
        assert body == stored  # byte for byte what the worker uploaded
        lines = body.splitlines()
        assert len(lines) == entry["count"]
        served = FacadeResource.objects.filter(
            deployment__ready=True, deployment__binding__facade__slug="demo", resource_type=entry["type"]
        )
        assert sorted(orjson.loads(line)["id"] for line in lines) == sorted(
            served.values_list("resource_id", flat=True)
        )

    assert requests.delete(status_url, timeout=10).status_code == 202
    assert keys(s3) == set()
    assert requests.get(manifest["output"][0]["url"], timeout=10).status_code == 404
