"""Tokens with a system (identifiers, codings) are stored as one search value each, "code<SEP>system" (two before:
"system|code" and "code"), and `_lastUpdated` is searched on the resource's own stamp (the swap wrote a search value
per resource before). Searches answer as before, on new indexes and on indexes built with the earlier format."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from mappings import actions
from mappings.actions.index_rows import StagedResource, stage_resources
from mappings.facade.search import _criteria
from mappings.facade.search_index import SEP, search_values
from mappings.jobs.index_staging import EPOCH, staged
from mappings.models import Deployment, SearchValue
from tests.facade.test_index_rows import key
from tests.facade.test_search_storage import found

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = {
    "t1": [{"system": "urn:mrn", "value": "A-1"}, {"system": "urn:ssn", "value": "123"}],
    "t2": [{"system": "urn:mrn", "value": "123"}, {"value": "NOSYS"}],
    "t3": [{"system": "urn:mrn", "value": "A-10"}],
}


def resources() -> dict[str, dict]:
    return {rid: {"resourceType": "Patient", "id": rid, "identifier": ids} for rid, ids in PEOPLE.items()}


def swapped(served, rows: list[StagedResource]) -> Deployment:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    with transaction.atomic():
        stage_resources(key(live), "Patient", rows)
    actions.do_finish_index(live, errors=[], records=len(rows))
    live.refresh_from_db()
    return live


def new_index(served) -> Deployment:
    first, _ = served["source"].records.order_by("id")
    return swapped(served, staged({rid: (resource, first.pk) for rid, resource in resources().items()}))


def earlier_index(served) -> Deployment:
    """The same resources with the values an index built before this format holds: two per identifier."""
    first, _ = served["source"].records.order_by("id")
    rows = []
    for rid, resource in resources().items():
        values = [("_id", rid, None, None)]
        for identifier in resource["identifier"]:
            value = identifier["value"].lower()
            values += [("identifier", f"{identifier.get('system', '')}|{value}", None, None)]
            values += [("identifier", value, None, None)]
        rows.append(StagedResource(rid, first.pk, {**resource, "meta": {"versionId": "1"}}, values))
    return swapped(served, rows)


SEARCHES = {
    "identifier=123": (2, ["t1", "t2"]),
    "identifier=urn:mrn|123": (1, ["t2"]),
    "identifier=urn:ssn|123": (1, ["t1"]),
    "identifier=urn:other|123": (0, []),
    "identifier=URN:MRN|a-1": (1, ["t1"]),  # tokens are matched without case, as before
    "identifier=a-1": (1, ["t1"]),  # not a prefix of A-10
    "identifier=a": (0, []),
    "identifier=|nosys": (1, ["t2"]),  # `|code`: no system
    "identifier=|123": (0, []),
    "identifier=nosys": (1, ["t2"]),
    "identifier=a-10,urn:ssn|123": (2, ["t1", "t3"]),
    "identifier=123&identifier=urn:mrn|123": (1, ["t2"]),
    "identifier:missing=false": (3, ["t1", "t2", "t3"]),
}


def test_an_identifier_is_one_search_value(served) -> None:
    live = new_index(served)
    stored = SearchValue.objects.filter(build=live.index_key, param="identifier")
    assert sorted(stored.values_list("value", flat=True)) == sorted(
        [f"a-1{SEP}urn:mrn", f"123{SEP}urn:ssn", f"123{SEP}urn:mrn", f"nosys{SEP}", f"a-10{SEP}urn:mrn"]
    )
    coded = {
        "resourceType": "Observation",
        "id": "o1",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
    }
    assert [row[1] for row in search_values(coded, EPOCH) if row[0] == "code"] == [f"1-8{SEP}http://loinc.org"]


@pytest.mark.parametrize("build", [new_index, earlier_index], ids=["new", "earlier"])
def test_identifier_searches_answer_as_before_on_either_format(served, client, build) -> None:
    build(served)
    for query, expected in SEARCHES.items():
        assert (query, found(client, query)) == (query, expected)


def test_a_separator_in_the_data_cannot_break_a_token_apart(served, client) -> None:
    first, _ = served["source"].records.order_by("id")
    odd = {"resourceType": "Patient", "id": "s1", "identifier": [{"system": "urn:x", "value": f"a{SEP}b"}]}
    swapped(served, staged({"s1": (odd, first.pk)}))
    assert found(client, "identifier=ab") == (1, ["s1"])
    assert found(client, "identifier=a") == (0, [])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's value index (CI)")
@pytest.mark.parametrize("value", ["123", "urn:mrn|123"])
def test_identifier_searches_use_the_value_index(served, value) -> None:
    live = new_index(served)
    (rows, _), *_ = _criteria("Patient", [("identifier", value)], live.index_key)[0]
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "search_value_prefix_idx" in plan, plan
