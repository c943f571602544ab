"""An independent Bulk Data client exports from the demo facade unmodified: smart-fetch (PyPI, the SMART/Cumulus
project's exporter; installed by scripts/test into .venv-clients because its pins conflict with ours) kicks off,
polls and downloads like it would from an EHR. The ids it wrote must be exactly the ids the facade serves."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import orjson
import pytest
import requests

from tests.conftest import worker_database_url
from tests.facade.test_bulk_export import served_ids
from tests.tasks.conftest import celery_worker

SMART_FETCH = Path(__file__).resolve().parents[2] / ".venv-clients" / "bin" / "smart-fetch"
TYPES = ["Patient", "Encounter", "Observation", "DiagnosticReport", "Immunization"]
pytestmark = pytest.mark.timeout(180)


def written_ids(folder: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.*.ndjson*")):  # <Type>.<n>.ndjson.gz; log.ndjson is smart-fetch's own log
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    resource = orjson.loads(line)
                    found.setdefault(resource["resourceType"], []).append(resource["id"])
    return found


def test_smart_fetch_exports_the_demo_facade_unmodified(demo, tmp_path) -> None:
    if not SMART_FETCH.exists():
        pytest.fail(f"smart-fetch is missing at {SMART_FETCH}: scripts/test installs it (install_clients).")
    out = tmp_path / "export"
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": worker_database_url()}, queues="exports,default"):
        finished = subprocess.run(
            [str(SMART_FETCH), "bulk", "--fhir-url", demo["base"], "--type", ",".join(TYPES), str(out)],
            capture_output=True,
            text=True,
            timeout=150,
        )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    exported = written_ids(out)
    for resource_type in TYPES:
        if resource_type != "Observation":
            assert served_ids(resource_type), resource_type  # the demo serves some of each
            assert sorted(exported.get(resource_type, [])) == served_ids(resource_type), resource_type
    # smart-fetch narrows Observations to its default categories with _typeFilter: the facade's own search for the
    # same categories is what it must have written.
    kickoff = orjson.loads((out / "log.ndjson").read_text().splitlines()[0])["eventDetail"]["requestParameters"]
    query = kickoff["_typeFilter"].removeprefix("Observation?")
    assert query.startswith("category=")
    assert sorted(exported.get("Observation", [])) == searched_ids(f"{demo['base']}/Observation?{query}&_count=100")


def searched_ids(url: str) -> list[str]:
    ids = []
    while url:
        bundle = requests.get(url, timeout=10).json()
        ids += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return sorted(ids)
