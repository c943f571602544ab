"""Search values a facade cannot honour answer 400 with an OperationOutcome (issue 15, probed from outside): unknown
_summary and _total options, :missing other than true/false, numbers beyond 64 bits in _offset and _count, dates
out of range, NUL characters, and more OR-values or criteria than a search may send to the database (SQLite refused
~500 `_id` values with a 500). `ap` dates are supported: the value's range widened by 10 % of its distance to now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from mappings.facade.search import MAX_CRITERIA, MAX_VALUES, _criteria, approximate_range
from mappings.facade.search_index import date_range
from tests.facade.test_search_storage import found, live_index

pytestmark = pytest.mark.django_db(transaction=True)


def refused(client, query: str) -> str:
    """The OperationOutcome's diagnostics of a search that must answer 400."""
    response = client.get(f"/fhir/clinic/Patient?{query}")
    assert response.status_code == 400, (query, response.status_code, response.content[:300])
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "query",
    ["_summary=garbage", "_summary=COUNT", "_total=garbage", "_total=", "_summary=count&_summary=nonsense"],
)
def test_it_refuses_summary_and_total_options_that_do_not_exist(served, client, query) -> None:
    live_index(served)
    name = query.split("=")[0]
    assert name in refused(client, query)


@pytest.mark.parametrize(
    "query", ["_summary=true", "_summary=false", "_summary=text", "_summary=data", "_total=none", "_total=accurate"]
)
def test_it_still_takes_the_summary_and_total_options_of_the_spec(served, client, query) -> None:
    live_index(served)
    assert client.get(f"/fhir/clinic/Patient?{query}").status_code == 200
    assert found(client, "_summary=count&_total=estimate") == (4, [])


@pytest.mark.parametrize("query", ["gender:missing=maybe", "birthdate:missing=", "name:missing=TRUE"])
def test_missing_takes_true_or_false_alone(served, client, query) -> None:
    live_index(served)
    assert ":missing" in refused(client, query)


@pytest.mark.parametrize(
    "query",
    [
        f"_offset={2**63}",
        f"_offset={10**30}",
        f"_count={2**63}",
        "_offset=-1",
        "_count=1.5",
        "birthdate=9999-12-31",  # its end, a day later, is past the last date Python can hold
        "birthdate=ge9999-12-31T23:59:59Z",
        "birthdate=99999999999",
        "name=a%00b",  # PostgreSQL cannot bind a NUL character
        "_after=p%00&_sort=_id",
    ],
)
def test_values_that_cannot_be_bound_answer_400_not_500(served, client, query) -> None:
    live_index(served)
    refused(client, query)


def test_the_largest_64_bit_offset_is_an_empty_page(served, client) -> None:
    live_index(served)
    bundle = client.get(f"/fhir/clinic/Patient?_offset={2**63 - 1}").json()
    assert bundle["total"] == 4 and "entry" not in bundle


def test_more_or_values_than_the_cap_answer_400_and_the_cap_itself_is_searched(served, client) -> None:
    """~500 `_id` values or ~900 `name` values were a 500 on SQLite (its expression depth limit)."""
    live_index(served)
    for param in ("_id", "name", "birthdate"):
        values = ["n1", *(f"x{i}" for i in range(499))] if param != "birthdate" else ["1985"] * 500
        assert f"{MAX_VALUES}" in refused(client, f"{param}={','.join(values)}")
    assert found(client, "_id=" + ",".join(["n1", *(f"x{i}" for i in range(MAX_VALUES - 1))])) == (1, ["n1"])
    assert found(client, "name=" + ",".join(["ng", *(f"x{i}" for i in range(MAX_VALUES - 1))]))[0] == 3
    assert found(client, "birthdate=" + ",".join(["1985"] * MAX_VALUES)) == (1, ["n3"])


def test_more_criteria_than_the_cap_answer_400_and_the_cap_itself_is_searched(served, client) -> None:
    live_index(served)
    assert f"{MAX_CRITERIA}" in refused(client, "&".join(["gender:missing=false"] * (MAX_CRITERIA + 1)))
    # The most a search may ask: every criterion at its cap of values, on SQLite too
    wide = ",".join(["ng", *(f"x{i}" for i in range(MAX_VALUES - 1))])
    assert found(client, "&".join([f"name={wide}"] * MAX_CRITERIA))[0] == 3


def test_ap_finds_dates_within_a_tenth_of_their_distance_to_now(served, client) -> None:
    """n1 was born 1979-12-31, n2 in 1980, n3 in 1985-06: ap1980 reaches 4.7 years either side at the end of 2026."""
    live_index(served)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    low, high = approximate_range(*date_range("1980"), now)
    assert (low.year, high.year) == (1975, 1985) and low.month == 4 and high.month == 8
    assert found(client, "birthdate=ap1980") == (3, ["n1", "n2", "n3"])  # later, the reach only grows
    assert found(client, "birthdate=ap2020") == (0, [])
    assert found(client, "birthdate=ap1985-06") == (1, ["n3"])  # within ~4 years: 1980 is farther
    # Never narrower than the value itself, however close to now
    low, high = approximate_range(*date_range("2026-12-06"), now)
    assert low <= datetime(2026, 12, 6, tzinfo=UTC) and high >= datetime(2026, 12, 7, tzinfo=UTC)
    # Widening stops at the dates a database can hold
    low, high = approximate_range(*date_range("0001"), now)
    assert low.year == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's partial index (CI)")
def test_ap_uses_the_date_index(served) -> None:
    live = live_index(served)
    (rows, _), *_ = _criteria("Patient", [("birthdate", "ap1980")], live.index_key)[0]
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "search_date_idx" in plan, plan
