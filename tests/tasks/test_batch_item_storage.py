"""Migration 0035: a batch item's payload is compressed with lz4 on PostgreSQL (pglz cost the server three times the
CPU a split message), and the migration goes back to pglz."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from mappings.models import BatchItem

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="column compression is PostgreSQL's"),
]
MIGRATION = importlib.import_module("mappings.migrations.0035_batch_item_payload_lz4")


def payload_compression() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'payload'",
            [BatchItem._meta.db_table],
        )
        return cursor.fetchone()[0]


def test_batch_item_payloads_are_compressed_with_lz4_and_the_migration_reverses() -> None:
    assert payload_compression() == "l"
    with connection.schema_editor() as editor:
        MIGRATION.backwards(None, editor)
    assert payload_compression() == "p"
    with connection.schema_editor() as editor:
        MIGRATION.forwards(None, editor)
    assert payload_compression() == "l"
