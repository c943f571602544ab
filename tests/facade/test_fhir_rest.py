"""The facade's FHIR REST API over HTTP: metadata, read, search with paging, formats, and every error an
OperationOutcome with the right status."""

from __future__ import annotations

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient

pytestmark = pytest.mark.timeout(120)
FHIR_JSON = "application/fhir+json"


def get(url: str, **params) -> requests.Response:
    return requests.get(url, params=params, timeout=10)


def outcome(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return body


def test_it_describes_itself_with_a_valid_capability_statement(demo) -> None:
    response = get(f"{demo['base']}/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    served = {resource.type: resource for resource in statement.rest[0].resource}
    assert set(served) == {"Patient", "Encounter", "Observation", "DiagnosticReport", "Immunization"}
    assert {param.name for param in served["Patient"].searchParam} >= {"identifier", "name", "birthdate", "gender"}
    assert statement.implementation.url == demo["base"]


def test_it_reads_a_patient_built_from_stored_messages(demo) -> None:
    first = get(f"{demo['base']}/Patient", _count=1).json()["entry"][0]["resource"]
    response = get(f"{demo['base']}/Patient/{first['id']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    assert response.headers["ETag"] == 'W/"1"' and response.headers["Last-Modified"]
    patient = Patient.model_validate(response.json())
    assert patient.id == first["id"] and patient.meta.lastUpdated


def test_it_answers_in_xml_when_asked(demo) -> None:
    first = get(f"{demo['base']}/Patient", _count=1).json()["entry"][0]["resource"]
    by_param = get(f"{demo['base']}/Patient/{first['id']}", _format="xml")
    by_header = requests.get(
        f"{demo['base']}/Patient/{first['id']}", headers={"Accept": "application/fhir+xml"}, timeout=10
    )
    for response in (by_param, by_header):
        assert response.headers["Content-Type"].startswith("application/fhir+xml")
        assert Patient.model_validate_xml(response.content).id == first["id"]


def test_it_searches_by_name_identifier_gender_and_birthdate(demo) -> None:
    everyman = get(f"{demo['base']}/Patient", family="every").json()  # string search matches the start, any case
    assert everyman["total"] >= 1
    patient = everyman["entry"][0]["resource"]
    assert patient["name"][0]["family"].lower().startswith("every")
    identifier = patient["identifier"][0]["value"]
    assert get(f"{demo['base']}/Patient", identifier=identifier).json()["total"] >= 1
    assert get(f"{demo['base']}/Patient", identifier="no-such-id").json()["total"] == 0
    birth = patient["birthDate"]
    for query, present in (
        (birth, True),
        (birth[:4], True),
        (f"ge{birth}", True),
        (f"lt{birth}", False),
        (f"gt{birth}", False),
        (f"le{birth}", True),
    ):
        ids = {
            entry["resource"]["id"] for entry in get(f"{demo['base']}/Patient", birthdate=query).json().get("entry", [])
        }
        assert (patient["id"] in ids) is present, query
    gender = patient["gender"]
    assert all(e["resource"]["gender"] == gender for e in get(f"{demo['base']}/Patient", gender=gender).json()["entry"])


def test_it_searches_observations_by_patient_code_and_date(demo) -> None:
    observation = get(f"{demo['base']}/Observation", _count=1).json()["entry"][0]["resource"]
    subject = observation["subject"]["reference"]
    by_patient = get(f"{demo['base']}/Observation", patient=subject.split("/")[1]).json()
    assert by_patient["total"] >= 1
    assert all(e["resource"]["subject"]["reference"] == subject for e in by_patient["entry"])
    coding = observation["code"]["coding"][0]
    by_code = get(f"{demo['base']}/Observation", code=f"{coding['system']}|{coding['code']}").json()
    assert observation["id"] in {e["resource"]["id"] for e in by_code["entry"]}


def test_it_pages_a_search_with_absolute_links_that_work(demo) -> None:
    first = get(f"{demo['base']}/Observation", _count=10).json()
    Bundle.model_validate(first)
    assert first["total"] > 20 and len(first["entry"]) == 10
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["next"].startswith("http://") and "previous" not in links
    second = requests.get(links["next"], timeout=10).json()
    second_links = {link["relation"]: link["url"] for link in second["link"]}
    assert "previous" in second_links
    ids = [e["resource"]["id"] for e in first["entry"]] + [e["resource"]["id"] for e in second["entry"]]
    assert len(set(ids)) == 20  # no overlap between pages
    count_only = get(f"{demo['base']}/Observation", _summary="count").json()
    assert count_only["total"] == first["total"] and "entry" not in count_only


def test_next_links_carry_a_cursor_and_walk_every_match_once_in_id_order(demo) -> None:
    everything = get(f"{demo['base']}/Observation", _count=500).json()
    expected = sorted(entry["resource"]["id"] for entry in everything["entry"])
    for sort, order in (("_id", expected), ("-_id", expected[::-1])):
        url, seen = f"{demo['base']}/Observation?_count=7&_sort={sort}", []
        while url:
            page = requests.get(url, timeout=10).json()
            assert page["total"] == len(expected)
            seen += [entry["resource"]["id"] for entry in page.get("entry", [])]
            links = {link["relation"]: link["url"] for link in page["link"]}
            url = links.get("next")
            if url:  # the cursor is the page's last id; the offset it stands for stays beside it
                assert f"_after={seen[-1]}" in url and f"_offset={len(seen)}" in url
            if "previous" in links:
                assert "_after" not in links["previous"]
        assert seen == order
    # The cursor decides where a page starts (an offset alone would start at the 8th match).
    third = get(f"{demo['base']}/Observation", _count=2, _offset=7, _after=expected[2]).json()
    assert [entry["resource"]["id"] for entry in third["entry"]] == expected[3:5]
    # Ordered by time, pages are found by offset and their links carry no cursor.
    by_time = get(f"{demo['base']}/Observation", _count=5, _sort="_lastUpdated").json()
    assert all("_after" not in link["url"] for link in by_time["link"])


def test_it_searches_with_a_posted_form(demo) -> None:
    posted = requests.post(f"{demo['base']}/Patient/_search", data={"family": "every"}, timeout=10)
    assert posted.status_code == 200 and posted.json()["total"] >= 1
    as_json = requests.post(f"{demo['base']}/Patient/_search", json={"family": "every"}, timeout=10)
    outcome(as_json, 415)


def test_it_answers_every_error_with_an_operation_outcome(demo) -> None:
    outcome(get(f"{demo['base']}/Patient/no-such-patient"), 404)
    outcome(get(f"{demo['base']}/Medication"), 404)  # a FHIR type this facade does not serve
    outcome(get(f"{demo['base']}/patient"), 404)  # not a type at all
    outcome(get(f"{demo['base']}/Patient", foo="1"), 400)
    outcome(get(f"{demo['base']}/Patient", birthdate="yesterday"), 400)
    outcome(get(f"{demo['base']}/Patient", _count="many"), 400)
    outcome(requests.put(f"{demo['base']}/Patient/x", json={}, timeout=10), 405)
    outcome(requests.delete(f"{demo['base']}/Patient/x", timeout=10), 405)
    outcome(requests.get(f"{demo['base']}/Patient", headers={"Accept": "text/html"}, timeout=10), 406)
    outcome(get(f"{demo['base']}/Patient", _format="text/csv"), 406)
    outcome(get(demo["base"].replace("/demo", "/nope") + "/metadata"), 404)


def test_it_echoes_the_request_id(demo) -> None:
    response = requests.get(f"{demo['base']}/metadata", headers={"X-Request-ID": "abc-123"}, timeout=10)
    assert response.headers["X-Request-ID"] == "abc-123"


def parameters(**values: object) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": name, ("valueInteger" if isinstance(value, int) else "valueString"): value}
            for name, value in values.items()
        ],
    }


def test_it_converts_data_with_azure_compatible_parameters(demo) -> None:
    from tests.api.conftest import ROOT

    message = (ROOT / "examples/hl7v2-adt-a01/samples/adt-a01-full.hl7").read_text()
    body = parameters(inputData=message, inputDataType="Hl7v2", mapping="hl7v2-adt-a01", version=1)
    response = requests.post(
        f"{demo['base']}/$convert-data", json=body, timeout=20, headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 200, response.text
    bundle = Bundle.model_validate(response.json())
    assert any(entry.resource.get_resource_type() == "Patient" for entry in bundle.entry)

    broken = parameters(inputData="not hl7", inputDataType="Hl7v2", mapping="hl7v2-adt-a01")
    failed = requests.post(
        f"{demo['base']}/$convert-data", json=broken, timeout=10, headers={"Content-Type": "application/fhir+json"}
    )
    assert failed.status_code == 422 and failed.json()["issue"][0]["details"]["coding"][0]["code"].startswith("FS-SRC")
    missing = requests.post(
        f"{demo['base']}/$convert-data",
        json=parameters(inputData="x", mapping="nope"),
        timeout=10,
        headers={"Content-Type": "application/fhir+json"},
    )
    outcome(missing, 404)
    outcome(requests.post(f"{demo['base']}/$convert-data", data="x", timeout=10), 415)


def test_it_validates_a_resource_and_reports_its_problems(demo) -> None:
    headers = {"Content-Type": "application/fhir+json"}
    good = requests.post(
        f"{demo['base']}/Patient/$validate",
        json={"resourceType": "Patient", "gender": "male"},
        headers=headers,
        timeout=10,
    )
    assert good.status_code == 200 and good.json()["issue"][0]["severity"] == "information"
    bad = requests.post(
        f"{demo['base']}/Patient/$validate",
        json={"resourceType": "Patient", "gender": "M"},
        headers=headers,
        timeout=10,
    )
    issue = bad.json()["issue"][0]
    assert issue["severity"] == "error" and issue["expression"] == ["Patient.gender"]
    wrapped = requests.post(
        f"{demo['base']}/$validate",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", "birthDate": "1980-02-30"}}],
        },
        headers=headers,
        timeout=10,
    )
    assert wrapped.json()["issue"][0]["expression"] == ["Patient.birthDate"]
    outcome(
        requests.post(
            f"{demo['base']}/Observation/$validate", json={"resourceType": "Patient"}, headers=headers, timeout=10
        ),
        400,
    )


def test_it_gzips_big_answers_for_clients_that_accept_it(demo) -> None:
    raw = requests.get(
        f"{demo['base']}/Observation",
        params={"_count": 50},
        stream=True,
        timeout=10,
        headers={"Accept-Encoding": "gzip"},
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    assert int(raw.headers["Content-Length"]) * 3 < len(raw.content)  # requests decompresses .content
    assert raw.json()["resourceType"] == "Bundle"


def test_it_counts_requests_latency_and_errors_per_type(demo) -> None:
    from rest_framework.test import APIClient

    for _ in range(3):
        get(f"{demo['base']}/Patient")
    get(f"{demo['base']}/Patient/missing")
    get(f"{demo['base']}/metadata")
    client = APIClient()
    client.force_authenticate(demo["admin"])
    metrics = client.get("/api/facades/demo/metrics?minutes=5").json()
    patient = metrics["by_type"]["Patient"]
    assert (patient["requests"], patient["errors"]) == (4, 1)
    assert metrics["by_type"]["(system)"]["requests"] >= 1
    assert 0 < patient["p50_ms"] <= patient["p95_ms"]
    assert sum(minute["requests"] for minute in metrics["per_minute"]) == metrics["requests"]


def test_it_includes_the_patients_of_matched_encounters(demo) -> None:
    bundle = get(f"{demo['base']}/Encounter", _include="Encounter:patient", _count=3).json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    wanted = {e["resource"]["subject"]["reference"] for e in matches}
    assert {f"Patient/{e['resource']['id']}" for e in included} == wanted
    assert bundle["total"] >= len(matches)  # includes are not counted
    outcome(get(f"{demo['base']}/Encounter", _include="Encounter:nonsense"), 400)
