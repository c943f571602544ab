"""Batch conversion: a published version over the records of a stored data source, the body of the `convert_batch`
Celery task (also called directly by tests and scripts). The task names the version and the source by id and reads
the payloads from the database: patient data never travels through the broker, and the answer is a summary (counts
and the records that failed, with their FS codes), not the converted resources."""

from __future__ import annotations

from mappings.compiling import resolve_version_id
from mappings.conf import engine_limits
from mappings.engine import run_mapping
from mappings.models import DataSource, SourceRecord

BATCH = 1000
MAX_LISTED_FAILURES = 100


def convert_batch_direct(version_id: int, source_id: int) -> dict:
    """Run the version on every record of the source, in the source's format, validating each output.
    Returns {mapping, version, records, converted, failed, failures: [{record, code, message}]} (at most 100
    failures are listed; `failed` counts them all)."""
    resolved = resolve_version_id(version_id)
    source = DataSource.objects.get(pk=source_id)
    limits = engine_limits()
    records = converted = 0
    failures = []
    rows = SourceRecord.objects.filter(source_id=source.pk).order_by("received_at", "id")
    for record_key, payload in rows.values_list("key", "payload").iterator(chunk_size=BATCH):
        records += 1
        result = run_mapping(resolved.compiled, payload, source_format=source.source_format, limits=limits)
        if result.ok:
            converted += 1
            continue
        first = next((error for error in result.errors if error.severity in ("error", "fatal")), None)
        if len(failures) < MAX_LISTED_FAILURES:
            failures.append(
                {"record": record_key, "code": first.code if first else "", "message": first.message if first else ""}
            )
    return {
        "mapping": resolved.mapping.slug,
        "version": resolved.version.number,
        "records": records,
        "converted": converted,
        "failed": records - converted,
        "failures": failures,
    }
