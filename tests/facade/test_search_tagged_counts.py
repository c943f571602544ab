"""A single-valued date's search value carries its resource's single-valued tokens (search_index.date_tag), so a count
of gender=…&birthdate=… is one scan of the date values (search.tagged_rows). Totals are the same as counted over each
criterion's values, on new indexes, on values written untagged (indexes built before) and on a mix of both."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from mappings import actions
from mappings.actions.index_rows import stage_resources
from mappings.facade.search import count_matches, tagged_rows
from mappings.facade.search_index import SEP, date_tag, params_for
from mappings.jobs.index_staging import staged
from mappings.models import Deployment, FacadeResource, SearchValue
from tests.facade.test_index_rows import key

pytestmark = pytest.mark.django_db(transaction=True)

GENDERS = ("female", "male", "other")
QUERIES = [
    "gender=female&birthdate=ge1980",
    "birthdate=lt1990&gender=male",
    "gender=FEMALE&birthdate=1985",
    "gender=female&birthdate=ne1985-03-01",
    "gender=female&gender=male&birthdate=ge1900",
    "gender=unknown&birthdate=ge1900",
    "gender=female,male&birthdate=ge1980",  # not tagged: alternatives
    "gender:text=fem&birthdate=ge1980",  # not tagged: a modifier
    "gender=female",
]


def patients() -> dict[str, dict]:
    """30 Patients, each gender with birth years 1970–1999; every seventh has no gender, every eleventh no birthdate."""
    people = {}
    for n in range(30):
        person = {"resourceType": "Patient", "id": f"p{n}", "birthDate": f"{1970 + n}-03-01"}
        if n % 7:
            person["gender"] = GENDERS[n % 3]
        if n % 11 == 0:
            del person["birthDate"]
        people[person["id"]] = person
    return people


def expected(query: str) -> int:
    """The total worked out in Python from the Patients themselves."""
    criteria = [part.split("=", 1) for part in query.split("&")]

    def matches(person: dict) -> bool:
        for name, raw in criteria:
            if name.startswith("gender"):
                gender = person.get("gender", "")
                wanted = raw.lower().split(",")
                if not (any(w in gender for w in wanted) if ":text" in name else gender in wanted):
                    return False
            elif name == "birthdate":
                year, day = int(person.get("birthDate", "0")[:4] or 0), person.get("birthDate")
                if day is None:
                    return False
                ok = {"ge": year >= int(raw[2:6]), "lt": year < int(raw[2:6]), "ne": day != raw[2:]}.get(raw[:2])
                if not (ok if ok is not None else day.startswith(raw)):
                    return False
        return True

    return sum(matches(person) for person in patients().values())


def counted(deployment: Deployment, query: str) -> int:
    resources = FacadeResource.objects.filter(deployment=deployment, resource_type="Patient")
    pairs = [tuple(part.split("=", 1)) for part in query.split("&")]
    return count_matches(resources, "Patient", pairs, deployment.index_key)


@pytest.fixture
def indexed(served) -> Deployment:
    first, _ = served["source"].records.order_by("id")
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    with transaction.atomic():
        stage_resources(key(live), "Patient", staged({rid: (p, first.pk) for rid, p in patients().items()}))
    actions.do_finish_index(live, errors=[], records=30)
    live.refresh_from_db()
    return live


def test_counts_from_tagged_untagged_and_mixed_date_values(indexed, client) -> None:
    dates = SearchValue.objects.filter(build=indexed.index_key, param="birthdate")
    assert set(dates.values_list("value", flat=True)) == {f"{SEP}gender={g}{SEP}" for g in GENDERS} | {SEP}
    for query in QUERIES:
        assert counted(indexed, query) == expected(query), query
    response = client.get("/fhir/clinic/Patient?gender=female&birthdate=ge1980&_summary=count")
    assert response.json()["total"] == expected("gender=female&birthdate=ge1980")
    # Half the values as an index built before wrote them, then all of them
    dates.filter(resource__resource_id__in=[f"p{n}" for n in range(0, 30, 2)]).update(value="")
    for query in QUERIES:
        assert counted(indexed, query) == expected(query), query
    dates.update(value="")
    for query in QUERIES:
        assert counted(indexed, query) == expected(query), query


def test_only_one_date_and_plain_single_valued_tokens_are_counted_from_tags() -> None:
    assert tagged_rows("Patient", [("gender", "female"), ("birthdate", "ge1980"), ("_count", "5")], 1) is not None
    for query in (
        [("gender", "female")],
        [("birthdate", "ge1980")],
        [("gender", "female,male"), ("birthdate", "ge1980")],
        [("gender:text", "fem"), ("birthdate", "ge1980")],
        [("gender", "female"), ("birthdate", "ge1980"), ("family", "smith")],
        [("gender", "female"), ("birthdate", "ge1980"), ("birthdate", "lt1990")],
        [("gender", f"fe{SEP}male"), ("birthdate", "ge1980")],
    ):
        assert tagged_rows("Patient", query, 1) is None, query


def test_a_tag_names_every_single_valued_token_or_nothing() -> None:
    encounter = params_for("Encounter")
    tokens = {"gender": [], "status": ["finished"], "class": ["amb"]}
    assert date_tag(tokens, encounter) == f"{SEP}status=finished{SEP}{SEP}class=amb{SEP}"
    assert date_tag({"gender": [], "status": [], "class": []}, params_for("Patient")) == SEP
    # Untagged (counted the old way) rather than a tag a search could not find
    assert date_tag({"gender": ["x" * 300], "status": [], "class": []}, params_for("Patient")) == ""
    assert date_tag({"gender": [f"a{SEP}b"], "status": [], "class": []}, params_for("Patient")) == ""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans (CI)")
def test_a_tagged_index_is_counted_in_one_scan(indexed) -> None:
    rows = tagged_rows("Patient", [("gender", "female"), ("birthdate", "ge1980")], indexed.index_key)
    sql, params = rows.values("resource_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # 30 rows: the planner would rather read the table
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "search_date_idx" in plan
    assert "never executed" in plan  # the semi-joins for untagged values: none met
