"""Build a deployment's index: run its version on every stored record of the binding's source and keep the
resources of the bound type (the newest record wins when several produce the same id), with their search values.

Small sources are indexed inside the deploy request; bigger ones by the `index_deployment` Celery task."""

from __future__ import annotations

import logging
import time

from django.db import connection, transaction
from django.utils import timezone

from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import run_mapping
from mappings.facade.search_index import search_values
from mappings.models import Deployment, FacadeResource, SearchValue, SourceRecord

logger = logging.getLogger(__name__)
INLINE_RECORDS = 500  # up to this many records, deploy indexes in the request
BATCH = 1000


def resources_of_type(output: dict | None, resource_type: str) -> list[dict]:
    if not isinstance(output, dict):
        return []
    if output.get("resourceType") == resource_type:
        return [output]
    if output.get("resourceType") == "Bundle":
        entries = output.get("entry") or []
        return [
            e["resource"]
            for e in entries
            if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == resource_type
        ]
    return []


def index_deployment_direct(deployment: Deployment) -> Deployment:
    started = time.perf_counter()
    binding = deployment.binding
    compiled = compile_version(deployment.version)
    limits = engine_limits()
    found: dict[str, tuple[dict, int]] = {}
    errors = []
    records = SourceRecord.objects.filter(source_id=binding.source_id).order_by("received_at", "id")
    for record in records.iterator(chunk_size=BATCH):
        result = run_mapping(compiled, record.payload, limits=limits, validate=False, variables=deployment.variables)
        fatal = [error for error in result.errors if error.severity in ("error", "fatal")]
        if fatal or result.output is None:
            first = fatal[0] if fatal else None
            errors.append(
                {"record": record.key, "code": first.code if first else "", "message": first.message if first else ""}
            )
            continue
        for resource in resources_of_type(result.output, binding.resource_type):
            if resource.get("id"):
                found[resource["id"]] = (resource, record.pk)
    now = timezone.now()
    with transaction.atomic():
        # Only the newest ready deployment is served; older ones keep their history row, not their index.
        FacadeResource.objects.filter(deployment__binding=binding).exclude(deployment=deployment).delete()
        Deployment.objects.filter(binding=binding).exclude(pk=deployment.pk).update(ready=False)
        FacadeResource.objects.filter(deployment=deployment).delete()
        rows = [
            FacadeResource(
                deployment=deployment,
                resource_type=binding.resource_type,
                resource_id=resource_id,
                record_id=record_id,
                content=_with_meta(resource, now),
                last_updated=now,
            )
            for resource_id, (resource, record_id) in found.items()
        ]
        created = FacadeResource.objects.bulk_create(rows, batch_size=BATCH)
        values = [
            SearchValue(resource=row, param=param, value=value, start=start, end=end)
            for row in created
            for param, value, start, end in search_values(row.content, now)
        ]
        SearchValue.objects.bulk_create(values, batch_size=BATCH)
        deployment.indexed = len(created)
        deployment.index_errors = errors[:100]
        deployment.ready = True
        deployment.save(update_fields=["indexed", "index_errors", "ready"])
    if connection.vendor == "postgresql" and len(created) > 1000:
        # Fresh statistics, or the planner keeps the empty-table estimates it had and searches take seconds.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE mappings_facaderesource, mappings_searchvalue")
    logger.info(
        "indexed deployment %s: %d %s from %d records, %d failed, %.0f ms",
        deployment.pk,
        len(created),
        binding.resource_type,
        records.count(),
        len(errors),
        (time.perf_counter() - started) * 1000,
    )
    return deployment


def _with_meta(resource: dict, now) -> dict:
    meta = dict(resource.get("meta") or {})
    meta["lastUpdated"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    meta["versionId"] = "1"
    return {**resource, "meta": meta}
