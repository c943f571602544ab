"""/api/profiles/: the core's profiles and extensions out of the box, uploads of definitions (JSON body, JSON or XML
file) and IG packages, element trees, deletes refused while something uses them, and the studio registry that
follows every upload and delete."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions
from mappings.models import AuditEvent, ProfileDefinition, ProfilePackage
from mappings.profiles import studio_registry

pytestmark = pytest.mark.django_db

LIST = "/api/profiles/"
PACKAGES = "/api/profiles/packages/"
US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
BP = "http://hl7.org/fhir/StructureDefinition/bp"
PROFILE_URL = "http://example.org/fhir/StructureDefinition/studio-patient"
EXTENSION_URL = "http://example.org/fhir/StructureDefinition/favourite-colour"


def patient_profile(url: str = PROFILE_URL, *, base: str = "http://hl7.org/fhir/StructureDefinition/Patient") -> dict:
    return {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "StudioPatient",
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": base,
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Patient", "path": "Patient"},
                {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1, "mustSupport": True},
            ]
        },
    }


def extension_definition(url: str = EXTENSION_URL) -> dict:
    return {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "FavouriteColour",
        "status": "draft",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": "Patient"}],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Extension", "path": "Extension", "max": "1"},
                {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": "string"}]},
            ]
        },
    }


def profile_with_extension(url: str = "http://example.org/fhir/StructureDefinition/colourful-patient") -> dict:
    profile = patient_profile(url)
    profile["differential"]["element"].append(
        {
            "id": "Patient.extension:colour",
            "path": "Patient.extension",
            "sliceName": "colour",
            "max": "1",
            "type": [{"code": "Extension", "profile": [EXTENSION_URL]}],
        }
    )
    return profile


def tgz(
    resources: list[dict], *, name: str = "example.colours", version: str = "1.0.0", dependencies=None
) -> io.BytesIO:
    manifest = {"name": name, "version": version, "fhirVersions": ["4.0.1"], "dependencies": dependencies or {}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"package/package.json": manifest}
        files.update({f"package/{r['resourceType']}-{i}.json": r for i, r in enumerate(resources)})
        for member, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    buffer.name = f"{name}-{version}.tgz"
    return buffer


def upload_file(client, name: str, content: bytes):
    handle = io.BytesIO(content)
    handle.name = name
    return client.post(LIST, {"file": handle}, format="multipart")


# --- list -------------------------------------------------------------------------------------------------------------


def test_it_lists_us_core_and_the_cores_profiles_out_of_the_box(api) -> None:
    page = api["viewer"].get(LIST, {"search": "us-core-patient"}).json()
    assert [row["url"] for row in page["results"]] == [US_CORE_PATIENT]
    assert page["results"][0]["source"] == "core" and page["results"][0]["id"] is None
    observations = api["viewer"].get(LIST, {"type": "Observation", "page_size": 500}).json()
    urls = {row["url"] for row in observations["results"]}
    assert {BP, "http://hl7.org/fhir/StructureDefinition/vitalsigns"} <= urls
    assert "http://hl7.org/fhir/us/core/StructureDefinition/us-core-smokingstatus" in urls
    extensions = api["viewer"].get(LIST, {"type": "Extension", "page_size": 5}).json()
    assert extensions["count"] > 300 and all(row["is_extension"] for row in extensions["results"])
    assert len(extensions["results"]) == 5 and extensions["next"]


def test_it_needs_a_role_to_read_and_an_author_to_upload(api) -> None:
    assert api["anonymous"].get(LIST).status_code == 401
    assert api["norole"].get(LIST).status_code == 403
    refused = api["viewer"].post(LIST, patient_profile(), format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert not ProfileDefinition.objects.exists()


def test_uploaded_definitions_come_first_and_filter_by_source(api) -> None:
    api["author"].post(LIST, patient_profile(), format="json")
    page = api["viewer"].get(LIST).json()
    assert page["results"][0]["url"] == PROFILE_URL and page["results"][0]["source"] == "uploaded"
    uploaded = api["viewer"].get(LIST, {"source": "uploaded"}).json()
    assert [row["url"] for row in uploaded["results"]] == [PROFILE_URL]
    assert api["viewer"].get(LIST, {"source": "core", "search": "studio-patient"}).json()["count"] == 0
    assert api["viewer"].get(LIST, {"kind": "nonsense"}).json()["code"] == "invalid"


def test_the_list_costs_the_same_queries_for_1_and_20_uploads(api, users, django_assert_num_queries) -> None:
    actions.do_upload_definition(acting_user=users["author"], resource=patient_profile("urn:test:p0"))
    with CaptureQueriesContext(connection) as one:
        assert api["viewer"].get(LIST).json()["count"] > 400
    for number in range(1, 20):
        actions.do_upload_definition(acting_user=users["author"], resource=patient_profile(f"urn:test:p{number}"))
    with django_assert_num_queries(len(one.captured_queries)):
        assert api["viewer"].get(LIST).json()["results"][19]["source"] == "uploaded"


# --- upload and detail ----------------------------------------------------------------------------------------------


def test_it_generates_the_snapshot_of_an_uploaded_differential_and_shows_both_trees(api, users) -> None:
    answer = api["author"].post(LIST, patient_profile(), format="json")
    assert answer.status_code == 201, answer.json()
    definition_id = answer.json()["definitions"][0]["id"]
    detail = api["viewer"].get(f"{LIST}{definition_id}").json()
    assert detail["snapshot_generated"] is True
    assert [row["id"] for row in detail["differential"]] == ["Patient", "Patient.birthDate"]
    birth_date = next(row for row in detail["snapshot"] if row["id"] == "Patient.birthDate")
    assert (birth_date["min"], birth_date["max"], birth_date["must_support"]) == (1, "1", True)
    assert len(detail["snapshot"]) > 40 and detail["snapshot"][0]["depth"] == 0
    assert api["viewer"].get(f"{LIST}{PROFILE_URL}").json()["id"] == definition_id  # by URL too
    event = AuditEvent.objects.get(action="profile.uploaded")
    assert (event.actor, event.after["url"], event.details["snapshot_generated"]) == (
        users["author"],
        PROFILE_URL,
        True,
    )


def test_it_shows_a_core_profile_by_url_with_slices_and_fixed_values(api) -> None:
    detail = api["viewer"].get(f"{LIST}{BP}").json()
    assert detail["source"] == "core" and detail["base_definition"].endswith("/vitalsigns")
    code = next(row for row in detail["snapshot"] if row["id"] == "Observation.code.coding:BPCode.code")
    assert code["fixed"] == {"fixedCode": "85354-9"} and code["depth"] == 3
    component = next(row for row in detail["snapshot"] if row["id"] == "Observation.component")
    assert component["slicing"]["rules"] == "open"
    patient = api["viewer"].get(f"{LIST}{US_CORE_PATIENT}").json()
    assert {row["slice_name"] for row in patient["extensions"]} >= {"race", "ethnicity", "birthsex"}
    assert api["viewer"].get(f"{LIST}http://example.org/nothing").status_code == 404
    assert api["viewer"].get(f"{LIST}Patient").status_code == 404
    assert api["viewer"].get(f"{LIST}999999").status_code == 404


def test_it_refuses_a_profile_whose_base_is_unknown_naming_it(api) -> None:
    answer = api["author"].post(
        LIST, patient_profile(base="http://example.org/fhir/StructureDefinition/nowhere"), format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["details"]["missing"] == ["http://example.org/fhir/StructureDefinition/nowhere"]
    assert "unknown base definition" in answer.json()["message"]
    assert not ProfileDefinition.objects.exists()


def test_it_refuses_a_differential_its_base_does_not_allow(api) -> None:
    profile = patient_profile()
    profile["differential"]["element"].append({"id": "Patient.gender", "path": "Patient.gender", "max": "*"})
    answer = api["author"].post(LIST, profile, format="json")
    assert answer.status_code == 400
    assert "max * is wider than the base's 1" in answer.json()["message"]


def test_it_refuses_bad_uploads_with_a_clear_message(api) -> None:
    assert api["author"].post(LIST, patient_profile(), format="json").status_code == 201
    again = api["author"].post(LIST, patient_profile(), format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    patient = api["author"].post(LIST, {"resourceType": "Patient", "id": "x"}, format="json")
    assert patient.status_code == 400 and "not 'Patient'" in patient.json()["message"]
    assert api["author"].post(LIST, [1, 2], format="json").status_code == 400
    no_url = api["author"].post(LIST, {"resourceType": "ValueSet"}, format="json")
    assert no_url.status_code == 400 and "canonical url" in no_url.json()["message"]
    broken = upload_file(api["author"], "broken.json", b'{"resourceType": ')
    assert broken.status_code == 400 and "broken.json is not valid JSON" in broken.json()["message"]
    damaged = upload_file(api["author"], "ig.tgz", b"\x1f\x8b\x08\x00garbage")
    assert damaged.status_code == 400 and "damaged" in damaged.json()["message"]
    assert api["author"].post(LIST, {}, format="multipart").json()["code"] == "invalid"
    assert ProfileDefinition.objects.count() == 1


def test_it_takes_a_definition_as_a_json_or_an_xml_file(api) -> None:
    from mappings.engine import formats

    sent = upload_file(api["author"], "p.json", json.dumps(patient_profile()).encode())
    assert sent.status_code == 201
    xml = formats.serialize(extension_definition(), "xml")
    answer = upload_file(api["author"], "colour.xml", xml.encode())
    assert answer.status_code == 201, answer.json()
    detail = api["viewer"].get(f"{LIST}{EXTENSION_URL}").json()
    assert detail["is_extension"] and detail["extension_value_types"] == ["string"]
    bad = upload_file(api["author"], "bad.xml", b"<StructureDefinition xmlns='http://hl7.org/fhir'><url value='x'/")
    assert bad.status_code == 400 and "not readable FHIR XML" in bad.json()["message"]


# --- extensions, uses and deletes -----------------------------------------------------------------------------------


def test_a_profile_naming_an_unknown_extension_is_refused_and_a_used_extension_cannot_be_deleted(api) -> None:
    refused = api["author"].post(LIST, profile_with_extension(), format="json")
    assert refused.status_code == 400 and refused.json()["details"]["missing"] == [EXTENSION_URL]
    assert api["author"].post(LIST, extension_definition(), format="json").status_code == 201
    assert api["author"].post(LIST, profile_with_extension(), format="json").status_code == 201
    detail = api["viewer"].get(f"{LIST}{EXTENSION_URL}").json()
    assert detail["used_by"] == ["http://example.org/fhir/StructureDefinition/colourful-patient"]
    in_use = api["author"].delete(f"{LIST}{EXTENSION_URL}")
    assert in_use.status_code == 409 and in_use.json()["code"] == "in_use"
    profile = api["viewer"].get(f"{LIST}http://example.org/fhir/StructureDefinition/colourful-patient").json()
    assert [row["url"] for row in profile["extensions"]] == [EXTENSION_URL]
    assert api["author"].delete(f"{LIST}{profile['id']}").status_code == 204
    assert api["author"].delete(f"{LIST}{EXTENSION_URL}").status_code == 204
    assert list(AuditEvent.objects.filter(action="profile.deleted").values_list("before__url", flat=True)) == [
        EXTENSION_URL,
        "http://example.org/fhir/StructureDefinition/colourful-patient",
    ]


def test_core_definitions_cannot_be_deleted_and_viewers_delete_nothing(api) -> None:
    assert api["author"].delete(f"{LIST}{BP}").status_code == 403
    row = api["author"].post(LIST, patient_profile(), format="json").json()["definitions"][0]
    assert api["viewer"].delete(f"{LIST}{row['id']}").status_code == 403
    assert ProfileDefinition.objects.filter(pk=row["id"]).exists()


def test_the_studio_registry_follows_uploads_and_deletes(api) -> None:
    assert studio_registry().structure(PROFILE_URL) is None
    row = api["author"].post(LIST, patient_profile(), format="json").json()["definitions"][0]
    generated = studio_registry().structure(PROFILE_URL)
    assert generated is not None and any(
        e["id"] == "Patient.birthDate" and e["min"] == 1 for e in generated["snapshot"]["element"]
    )
    api["author"].delete(f"{LIST}{row['id']}")
    assert studio_registry().structure(PROFILE_URL) is None


# --- packages -------------------------------------------------------------------------------------------------------


def test_it_loads_a_package_whose_definitions_build_on_each_other(api, users) -> None:
    answer = api["author"].post(
        LIST,
        {
            "file": tgz(
                [
                    profile_with_extension(),
                    extension_definition(),
                    {"resourceType": "ValueSet", "url": "urn:vs:colours", "status": "active"},
                ]
            )
        },
        format="multipart",
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["package"]["name"] == "example.colours" and body["package"]["definitions"] == 3
    assert sorted(row["package"] for row in body["definitions"]) == ["example.colours#1.0.0"] * 3
    assert studio_registry().value_set("urn:vs:colours") is not None
    listed = api["viewer"].get(PACKAGES).json()
    assert [(row["name"], row["version"], row["definitions"]) for row in listed["results"]] == [
        ("example.colours", "1.0.0", 3)
    ]
    one = body["definitions"][0]
    refused = api["author"].delete(f"{LIST}{one['id']}")
    assert refused.status_code == 409 and "delete the package as a whole" in refused.json()["message"]
    assert AuditEvent.objects.get(action="package.uploaded").actor == users["author"]


def test_a_package_with_a_missing_dependency_is_refused_naming_it(api) -> None:
    answer = api["author"].post(
        LIST,
        {"file": tgz([patient_profile()], dependencies={"hl7.fhir.r4.core": "4.0.1", "hl7.terminology.r4": "5.0.0"})},
        format="multipart",
    )
    assert answer.status_code == 400
    assert answer.json()["details"]["missing"] == ["hl7.terminology.r4#5.0.0"]
    assert not ProfilePackage.objects.exists() and not ProfileDefinition.objects.exists()


def test_a_package_needed_by_another_or_used_outside_it_is_not_deleted(api) -> None:
    base = (
        api["author"]
        .post(LIST, {"file": tgz([extension_definition()], name="colours.base")}, format="multipart")
        .json()
    )
    dependent = (
        api["author"]
        .post(
            LIST,
            {"file": tgz([profile_with_extension()], name="colours.profiles", dependencies={"colours.base": "1.0.x"})},
            format="multipart",
        )
        .json()
    )
    base_id, dependent_id = base["package"]["id"], dependent["package"]["id"]
    refused = api["author"].delete(f"{PACKAGES}{base_id}")
    assert refused.status_code == 409 and "colours.profiles#1.0.0" in refused.json()["message"]
    assert (
        api["author"]
        .post(LIST, {"file": tgz([extension_definition()], name="colours.base")}, format="multipart")
        .status_code
        == 409
    )
    assert api["author"].delete(f"{PACKAGES}{dependent_id}").status_code == 204
    assert api["author"].delete(f"{PACKAGES}{base_id}").status_code == 204
    assert not ProfileDefinition.objects.exists()
    assert AuditEvent.objects.filter(action="package.deleted").count() == 2
    assert api["viewer"].get(f"{PACKAGES}{base_id}").status_code == 404


def test_the_editor_completes_known_extension_urls_uploaded_ones_first(api) -> None:
    api["author"].post(LIST, extension_definition(), format="json")
    answer = api["viewer"].get("/api/editor/completions", {"part": "extensions"}).json()
    known = {row["url"]: row for row in answer["extensions"]}
    assert answer["extensions"][0]["url"] == EXTENSION_URL and known[EXTENSION_URL]["types"] == ["string"]
    birth_sex = known["http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"]
    assert (birth_sex["types"], birth_sex["source"]) == (["code"], "core")
    assert known["http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"]["types"] == []  # complex
    assert "extensions" not in api["viewer"].get("/api/editor/completions").json()  # only when asked for


def _with(**changes) -> dict:
    profile = patient_profile()
    profile.update(changes)
    return profile


MALFORMED = [
    (_with(differential=[1, 2]), "differential must be an object with an element list"),
    (_with(differential={"element": [{"id": "Patient"}]}), "must be an object with a path"),
    (_with(differential={"element": [{"path": "Patient.name", "min": "1"}]}), "min must be a whole number"),
    (_with(differential={"element": [{"path": "Patient.name", "max": "lots"}]}), "max must be a whole number or *"),
    (_with(differential={"element": [{"path": "Patient.name", "type": "HumanName"}]}), "type must be a list"),
    (_with(differential={"element": [{"path": "Patient.name", "binding": []}]}), "binding must be an object"),
    (_with(baseDefinition=["x"]), "baseDefinition must be a string"),
    (_with(name="a\x00b"), "must not contain a NUL character"),
    (
        _with(derivation="specialization", snapshot={"element": [{"path": "Patient"}]}),
        "defines the R4 type Patient again",
    ),
    ({"resourceType": "ValueSet", "url": "urn:vs", "compose": {"include": {"system": "x"}}}, "compose.include must be"),
    ({"resourceType": "CodeSystem", "url": "urn:cs", "concept": [{"display": "no code"}]}, "concept must be a list"),
]


@pytest.mark.parametrize(("resource", "message"), MALFORMED, ids=[message for _, message in MALFORMED])
def test_it_refuses_a_definition_whose_parts_are_not_shaped_as_fhir_says(api, resource: dict, message: str) -> None:
    answer = api["author"].post(LIST, resource, format="json")
    assert answer.status_code == 400 and message in answer.json()["message"], answer.json()
    assert not ProfileDefinition.objects.exists()
    assert api["viewer"].get(LIST).status_code == 200  # nothing half-stored poisons the registry


def test_ids_too_long_for_the_database_are_simply_not_found(api) -> None:
    assert api["viewer"].get(f"{LIST}{'9' * 40}").status_code == 404
    assert api["viewer"].get(f"{PACKAGES}{'9' * 40}").status_code == 404
    assert api["viewer"].get(f"{LIST}²").status_code == 404


def test_the_preview_validates_against_uploaded_profiles_and_checks_uploaded_extensions(api, json_patient) -> None:
    api["author"].post(LIST, extension_definition(), format="json")
    api["author"].post(LIST, patient_profile(), format="json")
    template = (
        '{"resourceType": "Patient", "meta": {"profile": ["' + PROFILE_URL + '"]},\n'
        '"extension": [{{ extension("' + EXTENSION_URL + '", "boolean", true) | tojson }}]}'
    )
    body = (
        api["viewer"]
        .post("/api/mappings/json-patient/render", {"payload": "{}", "template": template}, format="json")
        .json()
    )
    found = {(error["code"], error["severity"], error["message"]) for error in body["errors"]}
    assert (
        "FS-RND-002",
        "warning",
        f"extension() {EXTENSION_URL} takes a value of type string, not 'boolean'.",
    ) in found
    expressions = [issue.get("expression") for issue in body["issues"]["issue"] if issue["severity"] == "error"]
    assert ["Patient.birthDate"] in expressions  # the uploaded profile's min 1, from meta.profile


def test_resources_validate_against_a_loaded_packages_profiles_and_extensions(api) -> None:
    from mappings.engine.validate import validate_output

    loaded = api["author"].post(
        LIST, {"file": tgz([profile_with_extension(), extension_definition()])}, format="multipart"
    )
    assert loaded.status_code == 201
    profile = "http://example.org/fhir/StructureDefinition/colourful-patient"
    patient = {
        "resourceType": "Patient",
        "meta": {"profile": [profile]},
        "extension": [{"url": EXTENSION_URL, "valueBoolean": True}],
    }
    errors = [issue for issue in validate_output(patient, registry=studio_registry()) if issue.severity == "error"]
    expressions = {expression for issue in errors for expression in issue.expression}
    assert "Patient.birthDate" in expressions  # the package profile's min 1
    assert any("Patient.extension[0]" in expression for expression in expressions)  # string, not boolean
    patient.update(birthDate="1970-01-01", extension=[{"url": EXTENSION_URL, "valueString": "green"}])
    assert [issue for issue in validate_output(patient, registry=studio_registry()) if issue.severity == "error"] == []


def test_the_package_list_costs_the_same_queries_for_1_and_20_packages(api, users, django_assert_num_queries) -> None:
    def load(number: int) -> None:
        package = tgz([patient_profile(f"urn:test:package-{number}")], name=f"example.p{number}")
        actions.do_upload_package(acting_user=users["author"], data=package.getvalue())

    load(0)
    with CaptureQueriesContext(connection) as one:
        assert api["viewer"].get(PACKAGES).json()["count"] == 1
    for number in range(1, 20):
        load(number)
    with django_assert_num_queries(len(one.captured_queries)):
        page = api["viewer"].get(PACKAGES).json()
    assert page["count"] == 20 and {row["definitions"] for row in page["results"]} == {1}
