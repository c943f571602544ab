"""Index rows staged by indexing workers and swapped in (mappings/actions/index_rows.py): staged rows are never
served, the newest record wins for an id whichever chunk stages first, a resource staged again gets its search values
rewritten, the swap stamps meta.lastUpdated and `_lastUpdated` with its own time, decimals keep their digits, a newer
deployment's staging survives an older one's swap, two workers staging the same ids at once both finish, and a chunk
taken over by another worker (or of a superseded deployment) stages nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from mappings import actions
from mappings.actions.index_rows import StagedResource, stage_resources, staging_key, staging_of
from mappings.engine.formats import loads
from mappings.facade.search_index import search_values
from mappings.jobs.index_staging import EPOCH, stage_chunk
from mappings.jobs.indexing import index_deployment_direct
from mappings.models import ChunkStatus, Deployment, FacadeResource, IndexChunk, SearchValue

pytestmark = pytest.mark.django_db(transaction=True)


def patient(family: str, *, extra: str = "") -> dict:
    return loads(f'{{"resourceType": "Patient", "id": "p1", "name": [{{"family": "{family}"}}]{extra}}}')


def staged(resource: dict, record_id: int) -> StagedResource:
    family = resource["name"][0]["family"].lower()
    meta = {"versionId": "1"}
    return StagedResource(resource["id"], record_id, {**resource, "meta": meta}, [("family", family, None, None)])


def key(deployment: Deployment) -> int:
    """Where a new index of the deployment is staged: its id, or minus its id once that one serves."""
    return staging_key(Deployment.objects.get(pk=deployment.pk))


def stage(deployment: Deployment, *resources: StagedResource) -> int:
    """Staged as an indexing worker stages: as the deployment's own rows for its first index, else beside."""
    staging = staging_of(Deployment.objects.get(pk=deployment.pk))
    with transaction.atomic():
        return stage_resources(staging.key, "Patient", resources, staging.serving_as)


def staged_rows(deployment: Deployment):
    """What is staged for the deployment's new index: its own rows while it does not serve, else the rows beside."""
    deployment = Deployment.objects.get(pk=deployment.pk)
    if deployment.index_key is None:
        return FacadeResource.objects.filter(deployment=deployment)
    return FacadeResource.objects.filter(staged_for=key(deployment))


def families_searched(client, family: str) -> list[str]:
    bundle = client.get(f"/fhir/clinic/Patient?family={family}").json()
    return [entry["resource"]["name"][0]["family"] for entry in bundle.get("entry", [])]


def test_staged_rows_are_not_served_until_the_swap_and_the_newest_record_wins(served, client) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    served_before = client.get("/fhir/clinic/Patient?_summary=count").json()["total"]
    first, second = served["source"].records.order_by("id")
    decimal = ', "extension": [{"url": "http://example.org/weight", "valueDecimal": 0.70}]'

    assert stage(live, staged(patient("Later", extra=decimal), second.pk)) == 1
    assert stage(live, staged(patient("Earlier"), first.pk)) == 0  # an older record loses, whenever it comes
    assert FacadeResource.objects.filter(staged_for=key(live)).count() == 1
    assert families_searched(client, "later") == []  # staged: not served yet
    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == served_before

    swapped = actions.do_finish_index(live, errors=[], records=2)
    assert swapped.indexed == 1
    assert families_searched(client, "later") == ["Later"] and families_searched(client, "earlier") == []
    row = FacadeResource.objects.get(deployment=live)
    assert row.staged_for is None
    # Its first index was keyed by its id; this one, staged beside it, by minus its id; the first one's values went.
    live.refresh_from_db()
    assert live.index_key == -live.pk and set(row.search_values.values_list("build", flat=True)) == {-live.pk}
    assert not SearchValue.objects.filter(build=live.pk).exists()
    stamp = row.last_updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    read = client.get("/fhir/clinic/Patient/p1")
    assert read.json()["meta"] == {"versionId": "1", "lastUpdated": stamp}
    assert b'"valueDecimal":0.70' in read.content.replace(b" ", b"")  # the swap's JSON update keeps the digits
    # `_lastUpdated` is searched on the row's own stamp: the swap writes no search value for it
    assert not SearchValue.objects.filter(param="_lastUpdated").exists()
    for query in (f"ge{stamp}", stamp, f"le{stamp}", f"ap{stamp}", f"ge{stamp[:10]}&family=later"):
        found = client.get(f"/fhir/clinic/Patient?_lastUpdated={query}").json()
        assert [entry["resource"]["id"] for entry in found.get("entry", [])] == ["p1"] and found["total"] == 1, query
    for query in (f"gt{stamp}", f"lt{stamp}", f"ne{stamp}", "_lastUpdated:missing=true"):
        found = client.get(f"/fhir/clinic/Patient?_lastUpdated={query}".replace("_lastUpdated=_", "_")).json()
        assert found["total"] == 0 and "entry" not in found, query


def test_a_resource_staged_again_by_a_newer_record_gets_its_search_values_rewritten(served, client) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    stage(live, staged(patient("Earlier"), first.pk))
    assert stage(live, staged(patient("Later"), second.pk)) == 1
    row = FacadeResource.objects.get(staged_for=key(live))
    assert list(row.search_values.values_list("param", "value")) == [("family", "later")]
    actions.do_finish_index(live, errors=[], records=2)
    assert families_searched(client, "earlier") == [] and families_searched(client, "later") == ["Later"]


def test_an_older_deployments_swap_keeps_what_a_newer_one_is_staging(served, client) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    # A newer deployment still indexing on the workers (pending), with one resource staged so far.
    pending = Deployment.objects.create(binding=served["binding"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    stage(pending, staged(patient("Pending"), first.pk))

    index_deployment_direct(live.pk)  # records were uploaded: the live deployment is indexed again and swapped
    assert staged_rows(pending).count() == 1

    pending = actions.do_finish_index(pending, errors=[], records=1)
    live.refresh_from_db()
    assert pending.ready and (live.ready, live.superseded) == (False, True)
    assert families_searched(client, "pending") == ["Pending"]
    assert FacadeResource.objects.filter(deployment=live).count() == 0


def test_a_superseded_deployments_staging_is_dropped_by_the_next_swap(served) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    replaced = Deployment.objects.create(binding=served["binding"], version=served["v1"], superseded=True)
    first, _ = served["source"].records.order_by("id")
    stage(replaced, staged(patient("Replaced"), first.pk))
    index_deployment_direct(live.pk)
    assert not FacadeResource.objects.filter(deployment=replaced).exists()
    assert not SearchValue.objects.filter(value="replaced").exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="two writers at once: PostgreSQL (CI)")
def test_two_workers_staging_the_same_ids_at_once_both_finish_and_the_newest_record_wins(served) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    ids = [f"p{n:04d}" for n in range(400)]
    start, failures = threading.Barrier(2), []

    def worker(record_id: int, family: str, order: list[str]) -> None:
        try:
            start.wait()
            for _ in range(3):
                resources = [staged({**patient(family), "id": resource_id}, record_id) for resource_id in order]
                stage(live, *resources)
        except Exception as exc:  # noqa: BLE001 — reported below: a deadlock or a lost row fails the test
            failures.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(first.pk, "Older", ids)),
        threading.Thread(target=worker, args=(second.pk, "Newer", ids[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    rows = FacadeResource.objects.filter(staged_for=key(live))
    assert rows.count() == 400 and {row.content["name"][0]["family"] for row in rows} == {"Newer"}
    values = SearchValue.objects.filter(resource__staged_for=key(live))
    assert values.count() == 400 and set(values.values_list("value", flat=True)) == {"newer"}


def test_a_chunk_taken_over_stages_nothing_and_a_superseded_deployment_gets_nothing(served) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    found = {"p1": (patient("Chunk"), first.pk)}
    chunk = IndexChunk.objects.create(
        deployment=live, first_record_id=first.pk, last_record_id=first.pk, status=ChunkStatus.RUNNING, attempts=2
    )
    stale = IndexChunk.objects.get(pk=chunk.pk)
    stale.attempts = 1  # another worker took the chunk over since (its attempt 2)
    assert stage_chunk(stale, live, found, [], 1) is False
    assert not FacadeResource.objects.filter(staged_for=key(live)).exists()

    assert stage_chunk(chunk, live, found, [], 1) is True  # this attempt's: recorded done, and staged
    assert IndexChunk.objects.get(pk=chunk.pk).status == ChunkStatus.DONE
    assert FacadeResource.objects.filter(staged_for=key(live)).count() == 1

    replaced = Deployment.objects.create(binding=served["binding"], version=served["v1"], superseded=True)
    other = IndexChunk.objects.create(
        deployment=replaced, first_record_id=first.pk, last_record_id=first.pk, status=ChunkStatus.RUNNING, attempts=1
    )
    assert stage_chunk(other, replaced, found, [], 1) is True  # the chunk is done; its deployment wants nothing
    assert not FacadeResource.objects.filter(deployment=replaced).exists()


def test_search_totals_count_each_matching_resource_once_from_the_live_index(served, client) -> None:
    """Totals come from the live index's search values (count_matches): a resource with several matching values (two
    given names starting "an", two identifiers or-ed) counts once, single-valued criteria too, and a staged index
    beside the live one changes nothing until it is swapped in."""
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    people = [
        ("a1", "female", ["Ann", "Anna"], ["x1", "x2"]),
        ("a2", "female", ["Andrea"], ["x3"]),
        ("a3", "male", ["Anton", "Andy"], ["x4"]),
        ("a4", "male", ["Bob"], ["x5"]),
    ]
    resources = []
    for resource_id, gender, given, identifiers in people:
        resource = {
            "resourceType": "Patient",
            "id": resource_id,
            "gender": gender,
            "name": [{"family": "Ng", "given": given}],
            "identifier": [{"system": "urn:mrn", "value": value} for value in identifiers],
            "meta": {"versionId": "1"},
        }
        values = [row for row in search_values(resource, EPOCH) if row[0] != "_lastUpdated"]  # the swap adds it
        resources.append(StagedResource(resource_id, first.pk, resource, values))
    with transaction.atomic():
        stage_resources(key(live), "Patient", resources)
    actions.do_finish_index(live, errors=[], records=1)
    expected = {
        "given=an": 3,
        "given=an&gender=female": 2,
        "gender=male&given=an": 1,
        "identifier=x1,x2": 1,
        "identifier=x1,x2,x3&given=an": 2,
        "gender=female,male": 4,
        "name:missing=false&given=an": 3,
        "family=ng": 4,
    }
    for query, total in expected.items():
        bundle = client.get(f"/fhir/clinic/Patient?{query}").json()
        assert (query, bundle["total"], len(bundle.get("entry", []))) == (query, total, total)
    past = client.get("/fhir/clinic/Patient?given=an&_offset=3").json()  # nothing left to read past the last match
    assert (past["total"], "entry" in past) == (3, False)
    last = client.get("/fhir/clinic/Patient?given=an&_offset=2").json()
    assert [entry["resource"]["id"] for entry in last["entry"]] == ["a3"]
    with transaction.atomic():  # a new index staged beside the live one: not counted
        stage_resources(key(live), "Patient", resources[:1])
    assert client.get("/fhir/clinic/Patient?given=an&_summary=count").json()["total"] == 3


def test_search_values_keep_tabs_backslashes_and_line_breaks(served) -> None:
    """The index's values go to PostgreSQL through COPY's text format, written by hand: its escapes must hold."""
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    family = "o\\brien\tsmith\nline\rend \\N"
    stage(live, StagedResource("p1", first.pk, {"id": "p1"}, [("family", family, None, None)]))
    assert list(SearchValue.objects.filter(build=key(live)).values_list("value", "start")) == [(family, None)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="migration 0034 is PostgreSQL's")
def test_search_values_have_no_primary_key_index_and_are_still_rewritten_and_dropped_by_resource(served) -> None:
    """Nothing reads a search value by its id: each staged value pays b-tree inserts into the search indexes and its
    resource's index only (migration 0034), and a resource written again still loses its old values."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, indisprimary FROM pg_index WHERE indrelid = %s::regclass",
            [SearchValue._meta.db_table],
        )
        indexes = dict(cursor.fetchall())
    assert not any(indexes.values())  # no primary key
    assert len(indexes) == 3  # (build, param, value), the dates, the resource
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    stage(live, staged(patient("Earlier"), first.pk))
    stage(live, staged(patient("Later"), second.pk))
    values = SearchValue.objects.filter(build=key(live))
    assert list(values.values_list("value", flat=True)) == ["later"]
    staged_rows(live).delete()  # cascades to the values, by resource
    assert not values.exists() and SearchValue.objects.exists()  # what serves keeps its values
