"""Where and how PostgreSQL keeps an indexed resource (migrations 0019, 0032): its content as `json` text, the JSON as
written (no binary `jsonb` form built on insert), compressed in the row up to 3 KB, not in the TOAST table, so staging,
the swap's stamp and every read skip the TOAST table and its index."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from django.db import connection

from mappings import actions
from mappings.engine.formats.decimals import decimal_default
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
    """Identifiers with hash values, which compress little: 55 make ~4.5 KB of JSON, ~2.3 KB compressed."""
    values = (hashlib.md5(f"{resource_id}{n}".encode()).hexdigest() for n in range(identifiers))
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": f"urn:oid:2.16.840.1.{n}", "value": value} for n, value in enumerate(values)],
    }


def stored(row: FacadeResource) -> tuple[str, int]:
    """(the content's text as stored, its size in the row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CAST(content AS TEXT), pg_column_size(content) FROM {FacadeResource._meta.db_table} WHERE id = %s",
            [row.pk],
        )
        return cursor.fetchone()


def test_content_is_stored_as_written(served, client) -> None:
    """`json`, not `jsonb`: a first index keeps the text it staged (jsonb would reorder the keys and add spaces)."""
    deployment = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    row = FacadeResource.objects.get(deployment=deployment)
    text, _ = stored(row)
    assert text == orjson.dumps(row.content, default=decimal_default).decode()
    assert client.get(f"/fhir/clinic/Patient/{row.resource_id}").json()["id"] == row.resource_id


def test_content_up_to_3_kb_compressed_stays_in_the_row(served, client) -> None:
    first, _ = served["source"].records.order_by("id")
    before = toasted_chunks()
    small = patient("small", 55)  # compressed, past the default 2 KB and under 3 KB
    swapped(served, staged({"small": (small, first.pk)}))
    assert toasted_chunks() == before
    _, size = stored(FacadeResource.objects.get(resource_id="small", deployment__isnull=False))
    assert 2100 < size < 3000
    assert client.get("/fhir/clinic/Patient/small").json()["identifier"] == small["identifier"]
    big = patient("big", 2000)  # far past 3 KB even compressed: TOAST still takes it
    swapped(served, staged({"big": (big, first.pk)}))
    assert toasted_chunks() > before
    assert client.get("/fhir/clinic/Patient/big").json()["identifier"] == big["identifier"]


def test_resource_rows_have_no_foreign_key_checks_and_deletes_still_follow_them(served) -> None:
    """Migration 0036: a staged row's two foreign key checks (a trigger and a locking lookup each) cost 15–25 µs a
    resource; the ORM's cascade (deployment) and SET_NULL (record) still run on delete."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [FacadeResource._meta.db_table],
        )
        assert cursor.fetchone()[0] == 0
    deployment = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    row = FacadeResource.objects.get(deployment=deployment)
    row.record.delete()
    row.refresh_from_db()
    assert row.record_id is None
    deployment.delete()
    assert not FacadeResource.objects.filter(pk=row.pk).exists()
