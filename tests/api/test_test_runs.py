"""/api/mappings/{slug}/test-runs/…: run every sample against the draft or a version on demand, and read the runs
recorded by saves, publishes and those requests."""

import pytest

from mappings import actions
from mappings.models import AuditEvent, TestRun

pytestmark = pytest.mark.django_db

RUNS = "/api/mappings/json-patient/test-runs/"
SUMMARY = {"id", "version", "draft_revision", "trigger", "passed", "failed", "duration_ms", "created_at", "created_by"}


def test_it_runs_the_samples_against_the_draft(api, json_patient) -> None:
    response = api["author"].post(RUNS, {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {*SUMMARY, "results"}
    assert (body["version"], body["draft_revision"], body["trigger"]) == (None, 1, "manual")
    assert (body["passed"], body["failed"], body["created_by"]) == (1, 0, "author")
    assert body["duration_ms"] >= 0
    case = body["results"][0]
    assert (case["case"], case["passed"], case["problems"], case["errors"]) == ("example-patient", True, [], [])
    run = TestRun.objects.get()
    assert run.id == body["id"]
    assert AuditEvent.objects.filter(action="tests.run", object_id=str(run.id)).exists()


def test_it_runs_the_samples_against_a_version(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    broken = json_patient.draft.template.replace("msg.LastName", "msg.FirstName")
    actions.do_save_draft(json_patient, acting_user=users["author"], template=broken, expected_revision=1)

    on_draft = api["author"].post(RUNS, {"version": None}, format="json").json()
    assert (on_draft["passed"], on_draft["failed"]) == (0, 1)
    failure = on_draft["results"][0]
    assert failure["passed"] is False
    assert any("Patient.name.family = 'Smith'" in problem for problem in failure["problems"])

    on_version = api["author"].post(RUNS, {"version": 1}, format="json").json()
    assert (on_version["version"], on_version["draft_revision"], on_version["passed"]) == (1, None, 1)


def test_it_reports_a_draft_that_does_not_compile_as_failed_cases(api, json_patient, users) -> None:
    actions.do_save_draft(json_patient, acting_user=users["author"], template="{% if %}", expected_revision=1)
    body = api["author"].post(RUNS, {}, format="json").json()
    assert (body["passed"], body["failed"]) == (0, 1)
    case = body["results"][0]
    assert case["problems"][0].startswith("FS-TPL-001")
    assert (case["errors"], case["timings"]) == ([], {})


def test_it_lists_runs_newest_first_without_results(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")  # a "publish" run
    api["author"].post(RUNS, {"version": 1}, format="json")
    api["author"].post(RUNS, {}, format="json")
    response = api["viewer"].get(RUNS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [(run["trigger"], run["version"]) for run in body["results"]] == [
        ("manual", None),
        ("manual", 1),
        ("publish", 1),
    ]
    assert set(body["results"][0]) == SUMMARY


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_runs_in_the_same_number_of_queries_for_1_or_20(
    api, json_patient, users, django_assert_num_queries, rows
) -> None:
    version = actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    for number in range(1, rows):
        actions.do_run_tests(json_patient, acting_user=users["admin"], version=version if number % 2 else None)
    # token, role, mapping, count, page
    with django_assert_num_queries(5):
        response = api["viewer"].get(RUNS)
    assert response.json()["count"] == rows


def test_it_shows_one_run_with_its_results(api, json_patient, users) -> None:
    run = actions.do_run_tests(json_patient, acting_user=users["author"])
    response = api["viewer"].get(f"{RUNS}{run.id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["trigger"], body["passed"]) == (run.id, "manual", 1)
    assert body["results"][0]["case"] == "example-patient"
    assert body["results"][0]["issues"]["resourceType"] == "OperationOutcome"


def test_it_answers_not_found_for_a_missing_run_version_or_mapping(api, json_patient, users) -> None:
    other = actions.do_create_mapping(acting_user=users["author"], slug="other", title="Other", source_format="json")
    elsewhere = actions.do_run_tests(other, acting_user=users["author"])
    for response in (
        api["viewer"].get(f"{RUNS}{elsewhere.id}"),  # a run of another mapping
        api["viewer"].get(f"{RUNS}999999"),
        api["viewer"].get(f"{RUNS}99999999999999999999999"),
        api["viewer"].get("/api/mappings/nope/test-runs/"),
        api["author"].post("/api/mappings/nope/test-runs/", {}, format="json"),
        api["author"].post(RUNS, {"version": 4}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "body", [{"version": "one"}, {"version": 0}, {"version": -3}, {"version": True}, {"version": 2**40}, [1], "x"]
)
def test_it_refuses_a_malformed_request(api, json_patient, body) -> None:
    response = api["author"].post(RUNS, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not TestRun.objects.exists()


@pytest.mark.parametrize(
    ("role", "method", "status"),
    [
        ("anonymous", "get", 401),
        ("norole", "get", 403),
        ("viewer", "get", 200),
        ("author", "get", 200),
        ("admin", "get", 200),
        ("anonymous", "post", 401),
        ("norole", "post", 403),
        ("viewer", "post", 403),
        ("author", "post", 201),
        ("admin", "post", 201),
        ("anonymous", "get-one", 401),
        ("norole", "get-one", 403),
        ("viewer", "get-one", 200),
        ("author", "get-one", 200),
        ("admin", "get-one", 200),
    ],
)
def test_it_lets_each_role_do_what_it_may(api, json_patient, users, role, method, status) -> None:
    run = actions.do_run_tests(json_patient, acting_user=users["author"])
    client = api[role]
    if method == "post":
        response = client.post(RUNS, {}, format="json")
    else:
        response = client.get(RUNS if method == "get" else f"{RUNS}{run.id}")
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"
