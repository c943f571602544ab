"""An independent Bulk Data client exports from the demo facade unmodified: smart-fetch (PyPI, the SMART/Cumulus
project's exporter; installed by scripts/test into .venv-clients because its pins conflict with ours) kicks off,
polls and downloads like it would from an EHR. The ids it wrote must be exactly the ids the facade serves.

On demo-smart, protected by SMART Backend Services, it does the same holding a client app's private key (made as
`fhirstudio smart-client` makes one): it reads smart-configuration, signs an ES384 assertion, gets a token and uses it
for every step; without a key it is refused (401), and with a key allowed too narrow a scope (403)."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import orjson
import pytest
import requests

from mappings.models import Facade, FacadeResource
from mappings.security.clients import create_smart_client
from mappings.security.scopes import parse_scopes
from mappings.security.tokens import issue_token
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


def searched_ids(url: str, headers: dict | None = None) -> list[str]:
    ids = []
    while url:
        bundle = requests.get(url, headers=headers, timeout=10).json()
        ids += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return sorted(ids)


def protected_ids(resource_type: str) -> list[str]:
    rows = FacadeResource.objects.filter(
        deployment__ready=True, deployment__binding__facade__slug="demo-smart", resource_type=resource_type
    )
    return sorted(rows.values_list("resource_id", flat=True))


def smart_fetch(base: str, out: Path, *extra: str, types: list[str] = TYPES) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SMART_FETCH), "bulk", "--fhir-url", base, "--type", ",".join(types), *extra, str(out)],
        capture_output=True,
        text=True,
        timeout=150,
    )


def test_smart_fetch_with_a_registered_key_exports_the_protected_demo_unmodified(demo, tmp_path) -> None:
    if not SMART_FETCH.exists():
        pytest.fail(f"smart-fetch is missing at {SMART_FETCH}: scripts/test installs it (install_clients).")
    base = demo["base"].replace("/fhir/demo", "/fhir/demo-smart")
    facade = Facade.objects.get(slug="demo-smart")
    keys = create_smart_client(facade, scopes=["system/*.rs"], out_dir=tmp_path / "keys")
    out = tmp_path / "export"
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": worker_database_url()}, queues="exports,default"):
        finished = smart_fetch(
            base, out, "--smart-client-id", keys.client.client_id, "--smart-key", str(keys.private_key)
        )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    exported = written_ids(out)
    for resource_type in TYPES:
        if resource_type != "Observation":
            assert protected_ids(resource_type), resource_type
            assert sorted(exported.get(resource_type, [])) == protected_ids(resource_type), resource_type
    kickoff = orjson.loads((out / "log.ndjson").read_text().splitlines()[0])["eventDetail"]["requestParameters"]
    query = kickoff["_typeFilter"].removeprefix("Observation?")
    token = issue_token("demo-smart", keys.client.client_id, parse_scopes("system/*.rs"))
    authorized = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base}/Observation?_count=1", headers=authorized, timeout=10).status_code == 200
    assert sorted(exported.get("Observation", [])) == searched_ids(f"{base}/Observation?{query}&_count=100", authorized)
    refused = requests.get(f"{base}/Patient", timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_smart_fetch_is_refused_without_a_key_and_with_too_narrow_a_scope(demo, tmp_path) -> None:
    if not SMART_FETCH.exists():
        pytest.fail(f"smart-fetch is missing at {SMART_FETCH}: scripts/test installs it (install_clients).")
    base = demo["base"].replace("/fhir/demo", "/fhir/demo-smart")
    without = smart_fetch(base, tmp_path / "without", types=["Patient"])
    assert without.returncode != 0
    # smart-fetch says so only after the facade answered 401 and it had no key to get a token with
    assert "without authentication arguments" in without.stdout + without.stderr, without.stdout[-3000:]
    assert requests.post(f"{base}/$export", headers={"Prefer": "respond-async"}, timeout=10).status_code == 401
    facade = Facade.objects.get(slug="demo-smart")
    keys = create_smart_client(facade, scopes=["system/Patient.rs"], out_dir=tmp_path / "keys")
    narrow = smart_fetch(
        base,
        tmp_path / "narrow",
        "--smart-client-id",
        keys.client.client_id,
        "--smart-key",
        str(keys.private_key),
        types=["Patient", "Encounter"],
    )
    output = narrow.stdout + narrow.stderr
    assert narrow.returncode != 0 and "[403] Exporting Encounter needs a scope" in output, output[-3000:]
