"""Where PostgreSQL keeps an indexed resource (migration 0019): its content compressed in the row up to 4 KB, not in
the TOAST table, so staging, the swap's stamp and every read skip the TOAST table and its index."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from mappings.jobs.index_staging import staged
from mappings.models import FacadeResource
from tests.facade.test_search_tokens import swapped

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's storage (CI)"),
]


def toasted_chunks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT reltoastrelid::regclass FROM pg_class WHERE relname = '{FacadeResource._meta.db_table}'"
        )
        (toast,) = cursor.fetchone()
        cursor.execute(f"SELECT count(*) FROM {toast}")
        return cursor.fetchone()[0]


def patient(resource_id: str, identifiers: int) -> dict:
    """Identifiers with hash values, which compress little: 70 make ~5.7 KB of JSON, ~2.9 KB compressed."""
    values = (hashlib.md5(f"{resource_id}{n}".encode()).hexdigest() for n in range(identifiers))
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": f"urn:oid:2.16.840.1.{n}", "value": value} for n, value in enumerate(values)],
    }


def test_content_up_to_4_kb_compressed_stays_in_the_row(served, client) -> None:
    first, _ = served["source"].records.order_by("id")
    before = toasted_chunks()
    small = patient("small", 70)  # compressed, past the default 2 KB and under 4 KB
    swapped(served, staged({"small": (small, first.pk)}))
    assert toasted_chunks() == before
    row = FacadeResource.objects.get(resource_id="small", deployment__isnull=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_column_size(content) FROM {FacadeResource._meta.db_table} WHERE id = %s", [row.pk])
        assert 2100 < cursor.fetchone()[0] < 4000
    assert client.get("/fhir/clinic/Patient/small").json()["identifier"] == small["identifier"]
    big = patient("big", 2000)  # far past 4 KB even compressed: TOAST still takes it
    swapped(served, staged({"big": (big, first.pk)}))
    assert toasted_chunks() > before
    assert client.get("/fhir/clinic/Patient/big").json()["identifier"] == big["identifier"]
