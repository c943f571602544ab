"""What an index stores for search, kept small for indexing speed (migration 0017), and searches that still find
everything: a `name` value that repeats a family or given name is stored under that param alone (a `name` search
reads those too), and the date index holds dates alone (every date prefix still uses it on PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from mappings import actions
from mappings.actions.index_rows import stage_resources
from mappings.facade.search import _criteria
from mappings.facade.search_index import search_values
from mappings.jobs.index_staging import EPOCH, staged, stored_values
from mappings.models import Deployment, SearchValue
from tests.facade.test_index_rows import key

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = {
    "n1": {"name": [{"family": "Ng", "given": ["Ann"], "text": "Dr Ann Ng"}], "birthDate": "1979-12-31"},
    "n2": {"name": [{"family": "Okafor", "given": ["Bea", "Ng"]}], "birthDate": "1980"},
    "n3": {"gender": "female", "birthDate": "1985-06"},
    "n4": {"name": [{"given": ["Ngozi"]}]},
}


def live_index(served) -> Deployment:
    """PEOPLE staged as indexing stages them (index_staging.staged), then swapped in."""
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    found = {rid: ({"resourceType": "Patient", "id": rid, **fields}, first.pk) for rid, fields in PEOPLE.items()}
    with transaction.atomic():
        stage_resources(key(live), "Patient", staged(found))
    actions.do_finish_index(live, errors=[], records=len(found))
    live.refresh_from_db()
    return live


def found(client, query: str) -> tuple[int, list[str]]:
    bundle = client.get(f"/fhir/clinic/Patient?{query}").json()
    return bundle["total"], sorted(entry["resource"]["id"] for entry in bundle.get("entry", []))


def test_name_values_repeating_a_family_or_given_name_are_not_stored(served) -> None:
    live = live_index(served)
    names = SearchValue.objects.filter(build=live.index_key, param="name").values_list("resource__resource_id", "value")
    assert sorted(names) == [("n1", "dr ann ng")]  # the text alone: n2's and n4's names are their family and given
    parts = SearchValue.objects.filter(build=live.index_key, param__in=["family", "given"])
    assert sorted(parts.values_list("value", flat=True)) == ["ann", "bea", "ng", "ng", "ngozi", "okafor"]


def test_name_searches_read_family_and_given_values_too(served, client) -> None:
    live_index(served)
    assert found(client, "name=ng") == (3, ["n1", "n2", "n4"])  # a family, a given, a text; n2 counted once
    assert found(client, "name=oka") == (1, ["n2"])
    assert found(client, "name=dr") == (1, ["n1"])
    assert found(client, "name:exact=ng") == (2, ["n1", "n2"])
    assert found(client, "name:exact=ngo") == (0, [])
    assert found(client, "name=bea,ann") == (2, ["n1", "n2"])
    assert found(client, "name:missing=true") == (1, ["n3"])
    assert found(client, "name:missing=false") == (3, ["n1", "n2", "n4"])
    assert found(client, "name=ng&birthdate=ge1980") == (1, ["n2"])
    assert found(client, "family=ng") == (1, ["n1"])  # family and given searches are as they were
    assert found(client, "given=ng") == (2, ["n2", "n4"])


def test_a_type_without_family_and_given_params_keeps_every_name_value() -> None:
    """RelatedPerson is searched by name alone: its family and given names are its name values."""
    person = {"resourceType": "RelatedPerson", "id": "r1", "name": [{"family": "Ng", "given": ["Ann"]}]}
    kept = [(param, value) for param, value, _, _ in stored_values(search_values(person, EPOCH)) if param == "name"]
    assert sorted(kept) == [("name", "ann"), ("name", "ng")]


def test_every_date_prefix_finds_dates_alone(served, client) -> None:
    live_index(served)
    assert found(client, "birthdate=ge1980") == (2, ["n2", "n3"])
    assert found(client, "birthdate=lt1980") == (1, ["n1"])
    assert found(client, "birthdate=ne1980") == (2, ["n1", "n3"])  # n4, with no birth date, is not "not 1980"
    assert found(client, "birthdate=eb1980-01-01") == (1, ["n1"])
    assert found(client, "birthdate=sa1984") == (1, ["n3"])
    assert found(client, "birthdate=1985") == (1, ["n3"])
    assert found(client, "birthdate=le1980-06") == (2, ["n1", "n2"])
    assert found(client, "birthdate:missing=true") == (1, ["n4"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's partial index (CI)")
@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_the_date_index_serves_every_prefix(served, prefix) -> None:
    """The partial date index (WHERE start IS NOT NULL) is usable only when a criterion implies it: `eb` reads the
    end alone and `ne` is a NOT, so each says start IS NOT NULL (search._date_condition)."""
    live = live_index(served)
    (rows, _), *_ = _criteria("Patient", [("birthdate", f"{prefix}1980")], live.index_key)[0]
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: make the index the planner's choice
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "search_date_idx" in plan, plan
