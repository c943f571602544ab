"""GET /api/starters/ and POST /api/mappings/ with starter=true: one small working template and sample per source
format, written with the demo content's shared snippets and lookup tables."""

import json

import pytest

from mappings import actions
from mappings.compiling import imported_names
from mappings.demo import load_demo
from mappings.engine import SOURCE_FORMATS
from mappings.models import Mapping
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

LIST = "/api/starters/"


@pytest.fixture
def library(users):
    """The demo content's shared snippets and lookup tables, imported through the actions (no mappings)."""
    texts = {
        str(path.relative_to(ROOT / "examples")): path.read_text()
        for path in sorted((ROOT / "examples/snippets").rglob("*.j2"))
    }
    created: set[str] = set()

    def create(name: str) -> None:
        if name in created or name not in texts:
            return
        for imported in imported_names(texts[name]):
            create(imported)  # a snippet is checked against the snippets it imports, so those come first
        actions.do_create_snippet(acting_user=users["admin"], name=name, text=texts[name])
        created.add(name)

    for name in texts:
        create(name)
    for path in sorted((ROOT / "examples/lookup").glob("*.json")):
        actions.do_create_lookup_table(acting_user=users["admin"], name=path.stem, data=json.loads(path.read_text()))


def create_from_starter(client, source_format: str):
    body = {"slug": f"new-{source_format}", "title": "New", "source_format": source_format, "starter": True}
    return client.post("/api/mappings/", body, format="json")


def test_it_lists_one_ready_starter_per_source_format(api, library) -> None:
    body = api["viewer"].get(LIST).json()
    assert [item["source_format"] for item in body] == list(SOURCE_FORMATS)
    for item in body:
        assert set(item) == {"source_format", "title", "template", "sample", "missing"}
        assert item["missing"] == [], item["source_format"]
        assert item["template"].lstrip().startswith("{%- import") and "{#-" in item["template"]  # commented
        assert item["title"] and item["sample"].strip()


@pytest.mark.parametrize("source_format", SOURCE_FORMATS)
def test_each_starter_renders_valid_fhir_from_its_sample(api, users, library, source_format) -> None:
    actions.do_create_mapping(acting_user=users["author"], slug="probe", title="Probe", source_format=source_format)
    starter = next(item for item in api["viewer"].get(LIST).json() if item["source_format"] == source_format)
    body = {"payload": starter["sample"], "template": starter["template"], "validate": True}
    answer = api["viewer"].post("/api/mappings/probe/render", body, format="json").json()
    assert (answer["ok"], answer["errors"]) == (True, []), answer["errors"]
    assert answer["issues"]["issue"] == [] or all(
        issue["severity"] == "information" for issue in answer["issues"]["issue"]
    )
    output = answer["output"]
    patients = [output] if output["resourceType"] == "Patient" else [e["resource"] for e in output["entry"]]
    assert patients and all(patient["resourceType"] == "Patient" and patient["name"] for patient in patients)


@pytest.mark.parametrize("source_format", SOURCE_FORMATS)
def test_it_creates_a_mapping_from_a_starter_with_its_sample(api, library, source_format) -> None:
    created = create_from_starter(api["author"], source_format)
    assert created.status_code == 201, created.json()
    slug = created.json()["slug"]
    starter = next(item for item in api["viewer"].get(LIST).json() if item["source_format"] == source_format)
    assert api["author"].get(f"/api/mappings/{slug}/draft").json()["template"] == starter["template"]
    samples = api["author"].get(f"/api/mappings/{slug}/samples/").json()["results"]
    assert [(sample["name"], sample["payload"]) for sample in samples] == [("starter", starter["sample"])]
    run = api["author"].post(f"/api/mappings/{slug}/test-runs/", {}, format="json").json()
    assert (run["passed"], run["failed"]) == (1, 0), run["results"]


def test_it_says_what_the_library_lacks_and_refuses_that_starter(api) -> None:
    body = {item["source_format"]: item for item in api["viewer"].get(LIST).json()}
    assert body["hl7v2"]["missing"][:2] == ["snippets/hl7v2/datatypes.j2", "snippets/hl7v2/ids.j2"]
    assert "administrative-gender" in body["hl7v2"]["missing"]
    refused = create_from_starter(api["author"], "hl7v2")
    assert (refused.status_code, refused.json()["code"]) == (400, "library_missing")
    assert refused.json()["details"]["missing"] == body["hl7v2"]["missing"]
    assert not Mapping.objects.exists()  # nothing half-made
    plain = api["author"].post(
        "/api/mappings/", {"slug": "plain", "title": "P", "source_format": "hl7v2"}, format="json"
    )
    assert plain.status_code == 201  # without the starter, an empty draft as before


def test_it_keeps_a_given_template_over_the_starter(api, library) -> None:
    body = {"slug": "own", "title": "Own", "source_format": "json", "starter": True, "template": "{}"}
    assert api["author"].post("/api/mappings/", body, format="json").status_code == 201
    assert api["author"].get("/api/mappings/own/draft").json()["template"] == "{}"
    assert api["author"].get("/api/mappings/own/samples/").json()["results"] == []


def test_every_starter_is_ready_once_the_demo_content_is_loaded(api, users) -> None:
    load_demo(users["admin"])
    assert all(item["missing"] == [] for item in api["viewer"].get(LIST).json())


def test_it_refuses_starters_to_anonymous_and_roleless_users(api) -> None:
    assert api["anonymous"].get(LIST).status_code == 401
    assert api["norole"].get(LIST).status_code == 403
    assert create_from_starter(api["viewer"], "json").status_code == 403
