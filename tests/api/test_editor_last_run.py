"""The editor's samples panel and the mapping list show the same last test run: the first row of the runs list,
which the editor asks for with its per-case results in one request."""

import pytest

from mappings import actions

pytestmark = pytest.mark.django_db

RUNS = "/api/mappings/json-patient/test-runs/"


def test_it_lists_the_last_run_with_its_results_in_one_request(api, json_patient, users) -> None:
    actions.do_run_tests(json_patient, acting_user=users["author"])
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")  # newest: a "publish" run
    body = api["viewer"].get(RUNS, {"page_size": 1, "results": "true"}).json()
    [last] = body["results"]
    assert (last["trigger"], last["version"], last["passed"], last["failed"]) == ("publish", 1, 1, 0)
    assert [result["case"] for result in last["results"]] == ["example-patient"]
    listed = api["viewer"].get("/api/mappings/json-patient/").json()["last_test_run"]
    assert listed["id"] == last["id"]  # the run the mapping list shows


def test_it_leaves_results_out_unless_asked(api, json_patient, users) -> None:
    actions.do_run_tests(json_patient, acting_user=users["author"])
    assert "results" not in api["viewer"].get(RUNS).json()["results"][0]
    assert "results" not in api["viewer"].get(RUNS, {"results": "false"}).json()["results"][0]
    assert api["viewer"].get(RUNS, {"results": "maybe"}).status_code == 400


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_runs_with_results_in_the_same_number_of_queries_for_1_or_20(
    api, json_patient, users, django_assert_num_queries, rows
) -> None:
    for _ in range(rows):
        actions.do_run_tests(json_patient, acting_user=users["author"])
    # token, role, mapping, count, page
    with django_assert_num_queries(5):
        response = api["viewer"].get(RUNS, {"results": "true", "page_size": 50})
    assert len(response.json()["results"]) == rows
