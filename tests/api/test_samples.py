"""/api/mappings/{slug}/samples/…: sample payloads with their expected output and FHIRPath assertions."""

import pytest

from mappings import actions
from mappings.models import AuditEvent, SampleCase

pytestmark = pytest.mark.django_db

SAMPLES = "/api/mappings/json-patient/samples/"
ONE = SAMPLES + "example-patient"
FIELDS = {"name", "payload", "source_format", "expected", "ignore_paths", "assertions", "created_at", "updated_at"}


def test_it_lists_a_mappings_samples(api, json_patient) -> None:
    response = api["viewer"].get(SAMPLES)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    sample = body["results"][0]
    assert set(sample) == FIELDS
    assert sample["name"] == "example-patient"
    assert sample["assertions"] == ["Patient.gender = 'male'", "Patient.name.family = 'Smith'"]
    assert '"MRN": "M0R1N2"' in sample["payload"]


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_samples_in_the_same_number_of_queries_for_1_or_20(
    api, json_patient, users, django_assert_num_queries, rows
) -> None:
    for number in range(1, rows):
        actions.do_create_sample(json_patient, acting_user=users["author"], name=f"case-{number}", payload="{}")
    # token, role, mapping, count, page
    with django_assert_num_queries(5):
        response = api["viewer"].get(SAMPLES)
    assert response.json()["count"] == rows


def test_it_pages_samples(api, json_patient, users) -> None:
    for number in range(3):
        actions.do_create_sample(json_patient, acting_user=users["author"], name=f"case-{number}", payload="{}")
    body = api["viewer"].get(SAMPLES, {"page_size": 2, "page": 2}).json()
    assert body["count"] == 4
    assert [sample["name"] for sample in body["results"]] == ["case-2", "example-patient"]
    assert body["previous"] and not body["next"]
    assert api["viewer"].get(SAMPLES, {"page": 9}).status_code == 404


def test_it_adds_a_sample(api, json_patient) -> None:
    response = api["author"].post(
        SAMPLES,
        {
            "name": "no-phone",
            "payload": '{"MRN": "A1", "LastName": "Lee", "Gender": "F"}',
            "source_format": "json",
            "expected": {"resourceType": "Patient"},
            "ignore_paths": ["Patient.id"],
            "assertions": ["Patient.gender = 'female'"],
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS
    assert (body["name"], body["expected"], body["ignore_paths"]) == (
        "no-phone",
        {"resourceType": "Patient"},
        ["Patient.id"],
    )
    sample = SampleCase.objects.get(name="no-phone")
    assert sample.assertions == ["Patient.gender = 'female'"]
    assert AuditEvent.objects.filter(action="sample.created", object_id=str(sample.pk)).exists()


def test_it_adds_a_sample_with_only_a_name_and_a_payload(api, json_patient) -> None:
    response = api["author"].post(SAMPLES, {"name": "bare", "payload": "{}"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["source_format"], body["expected"], body["ignore_paths"], body["assertions"]) == ("", None, [], [])


def test_it_refuses_a_second_sample_with_the_same_name(api, json_patient) -> None:
    response = api["author"].post(SAMPLES, {"name": "example-patient", "payload": "{}"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert SampleCase.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": "{}"}, "name"),
        ({"name": "Not a slug!", "payload": "{}"}, "name"),
        ({"name": "x" * 101, "payload": "{}"}, "name"),
        ({"name": "a"}, "payload"),
        ({"name": "a", "payload": ""}, "payload"),
        ({"name": "a", "payload": {"MRN": 1}}, "payload"),
        ({"name": "a", "payload": "{}", "source_format": "pdf"}, "source_format"),
        ({"name": "a", "payload": "{}", "source_format": 3}, "source_format"),
        ({"name": "a", "payload": "{}", "expected": [1]}, "expected"),
        ({"name": "a", "payload": "{}", "expected": "Patient"}, "expected"),
        ({"name": "a", "payload": "{}", "expected": {"id": ["\x00"]}}, "expected"),  # jsonb cannot store U+0000
        ({"name": "a", "payload": "{\x00}"}, "payload"),
        ({"name": "a", "payload": "{}", "ignore_paths": "id"}, "ignore_paths"),
        ({"name": "a", "payload": "{}", "ignore_paths": [1]}, "ignore_paths"),
        ({"name": "a", "payload": "{}", "assertions": "Patient.active"}, "assertions"),
        ({"name": "a", "payload": "{}", "assertions": [True]}, "assertions"),
        ({"name": "a", "payload": "{}", "assertions": [{"x": 1}]}, "assertions"),
    ],
)
def test_it_refuses_a_malformed_sample(api, json_patient, body, field) -> None:
    response = api["author"].post(SAMPLES, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]
    assert SampleCase.objects.count() == 1


@pytest.mark.parametrize(
    ("assertion", "complaint"),
    [
        ("Bundle.entry.where(", "ends too early"),
        ("Patient.name)", "extraneous input ')'"),
        ("Patient..name", "extraneous input '.'"),
        ("Patient.gender = 'male", "token recognition error"),
        ("Patient.active Patient.gender", "input 'Patient' expecting <EOF>"),
    ],
)
def test_it_refuses_an_assertion_that_is_not_fhirpath_naming_it(api, json_patient, assertion, complaint) -> None:
    good = "Patient.gender = 'male'"
    response = api["author"].post(
        SAMPLES, {"name": "bad", "payload": "{}", "assertions": [good, assertion]}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    [message] = body["details"]["assertions"]
    assert message.startswith(f"Assertion 2 ({assertion!r}) is not FHIRPath: at column ")
    assert complaint in message
    assert not SampleCase.objects.filter(name="bad").exists()

    changed = api["author"].patch(ONE, {"assertions": [assertion]}, format="json")
    assert changed.status_code == 400
    assert "Assertion 1" in changed.json()["details"]["assertions"][0]
    assert SampleCase.objects.get(name="example-patient").assertions == [
        "Patient.gender = 'male'",
        "Patient.name.family = 'Smith'",
    ]


def test_it_accepts_the_fhirpath_the_demo_and_examples_use(api, json_patient) -> None:
    assertions = [
        "Bundle.entry.resource.ofType(Patient).name.family = 'EVERYMAN'",
        "Patient.birthDate >= @2000-01-01",
        "name.where(use = 'official').given.first().exists()",
        "Bundle.entry.select(resource as Patient).count() = 1",
        "iif(Patient.active, 1, 2) = 1",
        "%resource.id.exists() implies Patient.id.exists()",
    ]
    response = api["author"].patch(ONE, {"assertions": assertions}, format="json")
    assert response.status_code == 200, response.json()


def test_it_shows_one_sample(api, json_patient) -> None:
    response = api["viewer"].get(ONE)
    assert response.status_code == 200
    assert response.json()["name"] == "example-patient"


def test_it_changes_a_sample(api, json_patient) -> None:
    response = api["author"].patch(
        ONE, {"assertions": ["Patient.active = true"], "expected": None, "source_format": ""}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["assertions"] == ["Patient.active = true"]
    sample = SampleCase.objects.get()
    assert sample.assertions == ["Patient.active = true"]
    assert '"MRN": "M0R1N2"' in sample.payload  # untouched
    assert AuditEvent.objects.filter(action="sample.updated").count() == 1


def test_it_keeps_a_samples_name_when_changing_it(api, json_patient) -> None:
    response = api["author"].patch(ONE, {"name": "renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "example-patient"


@pytest.mark.parametrize(
    "body", [{"payload": 5}, {"payload": ""}, {"assertions": "x"}, {"expected": 3}, {"source_format": "pdf"}, ["x"]]
)
def test_it_refuses_a_malformed_change(api, json_patient, body) -> None:
    response = api["author"].patch(ONE, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_it_deletes_a_sample(api, json_patient) -> None:
    response = api["author"].delete(ONE)
    assert response.status_code == 204
    assert not SampleCase.objects.exists()
    assert AuditEvent.objects.filter(action="sample.deleted").count() == 1
    assert api["author"].delete(ONE).status_code == 404


def test_it_answers_not_found_for_a_missing_sample_or_mapping(api, json_patient) -> None:
    for client, method, url in [
        (api["viewer"], "get", SAMPLES + "nope"),
        (api["author"], "patch", SAMPLES + "nope"),
        (api["author"], "delete", SAMPLES + "nope"),
        (api["viewer"], "get", "/api/mappings/nope/samples/"),
        (api["author"], "post", "/api/mappings/nope/samples/"),
        (api["viewer"], "get", "/api/mappings/nope/samples/example-patient"),
    ]:
        response = getattr(client, method)(
            url, {"name": "a", "payload": "{}"} if method != "get" else None, format="json"
        )
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        (role, method, path, status)
        for method, path, ok in [
            ("get", "", 200),
            ("post", "", 201),
            ("get", "example-patient", 200),
            ("patch", "example-patient", 200),
            ("delete", "example-patient", 204),
        ]
        for role, status in [
            ("anonymous", 401),
            ("norole", 403),
            ("viewer", ok if method == "get" else 403),
            ("author", ok),
            ("admin", ok),
        ]
    ],
)
def test_it_lets_each_role_do_what_it_may(api, json_patient, role, method, path, status) -> None:
    body = {"name": "new-case", "payload": "{}"} if method == "post" else {"assertions": []}
    client = api[role]
    url = SAMPLES + path
    response = client.get(url) if method == "get" else getattr(client, method)(url, body, format="json")
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"
