"""A deploy is served by every web worker on its next request: gunicorn with two worker processes, both having read
(and cached) the live deployment, answer with the new version the moment the deploy returns. Each request reads the
facade's generation, which the deploy grew; a time-based cache would answer 404 here (the old index is gone)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mappings import actions
from tests.conftest import ROOT, worker_database_url
from tests.legacy_http import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def gunicorn(transactional_db, tmp_path: Path):
    port, log = free_port(), tmp_path / "access.log"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "fhirstudio.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--graceful-timeout",  # the default 30 s raced process.wait(timeout=30) below, and left it running
            "5",
            "--access-logfile",
            str(log),
            "--access-logformat",
            "%(p)s %(s)s %(r)s",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": worker_database_url()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:  # stopped however the test ends, a server that never answered included
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/fhir/none/metadata", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # workers load the FHIR definitions before serving
                time.sleep(0.2)
        yield base, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers_from_both_workers(url: str, log: Path, phase: str) -> list[dict]:
    """Ask until both worker processes have answered (a fresh connection each time; bounded by 60 s), return every
    body. Each request is marked with its phase in the query, so the access log (written after the answer, by either
    worker) tells which process answered which phase. Bounded by time, not by a count: a read takes ~2 ms, so a
    count ran out while the second worker was still loading the FHIR definitions on a loaded machine."""
    bodies, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        bodies.append(requests.get(url, params={"probe": f"{phase}-{len(bodies)}"}, timeout=10).json())
        if len(bodies) >= 4 and len(worker_pids(log, phase)) == 2:
            return bodies
        if len(bodies) > 50:
            time.sleep(0.05)  # the second worker is not up yet: ask less often while it starts
    pytest.fail(f"only one worker answered {len(bodies)} requests in 60 s:\n{log.read_text()[-500:]}")


def worker_pids(log: Path, phase: str) -> set[str]:
    return {line.split()[0] for line in log.read_text().splitlines() if f"probe={phase}-" in line}


def test_a_deploy_is_served_by_every_worker_at_once(gunicorn, users, json_patient) -> None:
    base, log = gunicorn
    author = users["author"]
    v1 = actions.do_publish_version(json_patient, acting_user=author, message="active")
    payload = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()
    source = actions.do_create_data_source(acting_user=author, name="registrations", source_format="json")
    actions.do_upload_records(source, acting_user=author, records=[("r1", payload)])
    facade = actions.do_create_facade(acting_user=author, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=json_patient, source=source
    )
    first = actions.do_deploy(binding, acting_user=author, version=v1)
    patient_id = first.resources.get().resource_id
    url = f"{base}/fhir/clinic/Patient/{patient_id}"
    assert {body["active"] for body in answers_from_both_workers(url, log, "v1")} == {True}  # both workers cached v1

    json_patient.refresh_from_db()
    draft = json_patient.draft
    changed = draft.template.replace('"active": true', '"active": false')
    actions.do_save_draft(json_patient, acting_user=author, template=changed, expected_revision=draft.revision)
    for sample in json_patient.samples.all():
        actions.do_update_sample(sample, acting_user=author, expected=None, assertions=["Patient.active = false"])
    v2 = actions.do_publish_version(json_patient, acting_user=author, message="inactive")
    actions.do_deploy(binding, acting_user=author, version=v2)

    bodies = answers_from_both_workers(url, log, "v2")
    assert {body.get("active") for body in bodies} == {False}, bodies  # no worker answered v1, or a 404
    assert len(worker_pids(log, "v2")) == 2
