"""A search's total is counted once per facade generation (mappings.facade.search.count_matches): paging through a
search does not count it again, and a new index — even one staged under a key an earlier index had — is counted anew."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions
from mappings.models import Deployment
from tests.facade.conftest import PATIENT

pytestmark = pytest.mark.django_db(transaction=True)


def record(mrn: str) -> tuple[str, str]:
    return (mrn, PATIENT.replace('"M0R1N2"', f'"{mrn}"'))


def total(client, query: str) -> tuple[int, int]:
    """(the search's total, how many COUNT queries answering it ran)"""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/fhir/clinic/Patient?{query}")
    assert response.status_code == 200, response.content
    counted = sum("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
    return response.json()["total"], counted


def test_a_total_is_counted_once_per_generation_and_again_for_each_new_index(served, client) -> None:
    author, source = served["author"], served["source"]
    deployment = actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    key = Deployment.objects.get(pk=deployment.pk).index_key

    assert total(client, "family=jones&_count=1") == (1, 1)
    # The next page, and the same search again: the same index at the same generation is not counted again.
    assert total(client, "family=jones&_count=1&_offset=1") == (1, 0)
    assert total(client, "_count=1&family=jones") == (1, 0)
    assert total(client, "family=smith&_count=1")[1] == 1  # another search is its own count

    # Two uploads re-index twice: the second index is staged under the key the first one had, so only the facade's
    # generation (grown by each swap) tells its total from the first one's.
    actions.do_upload_records(source, acting_user=author, records=[record("M2")])
    assert Deployment.objects.get(pk=deployment.pk).index_key == -key
    actions.do_upload_records(source, acting_user=author, records=[record("M3")])
    assert Deployment.objects.get(pk=deployment.pk).index_key == key
    assert total(client, "family=jones&_count=1") == (1, 1)
    assert total(client, "gender=male") == (3, 1)
    assert total(client, "gender=male&_offset=2") == (3, 0)
