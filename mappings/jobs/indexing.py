"""Build a deployment's index: run its version on every stored record of the binding's source (in the source's
format) and keep the resources of the bound type, the newest record winning when several produce the same id, with
their search values. The engine runs with no transaction open; `do_finish_index` swaps the rows in, in bulk, in one.

Called by the `index_deployment` Celery task (in the deploying process for small sources) and by tests."""

from __future__ import annotations

import logging
import time

from django.db import connection
from django.utils import timezone

from mappings.actions import do_finish_index
from mappings.actions.deployments import IndexedResource
from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import run_mapping
from mappings.facade.search_index import resources_of_type, search_values
from mappings.models import Deployment, SourceRecord

logger = logging.getLogger(__name__)
BATCH = 1000


def index_deployment_direct(deployment_id: int) -> Deployment | None:
    """The deployment as indexed, or None when it was deleted (with its binding or facade) before the job ran."""
    started = time.perf_counter()
    deployment = Deployment.objects.select_related("binding__source", "version").filter(pk=deployment_id).first()
    if deployment is None:
        logger.info("deployment %s was deleted before it was indexed: nothing to do", deployment_id)
        return None
    binding, source = deployment.binding, deployment.binding.source
    compiled = compile_version(deployment.version)
    limits = engine_limits()
    found: dict[str, tuple[dict, int]] = {}
    errors, records = [], 0
    rows = SourceRecord.objects.filter(source_id=source.pk).order_by("received_at", "id")
    for record in rows.iterator(chunk_size=BATCH):
        records += 1
        result = run_mapping(
            compiled,
            record.payload,
            source_format=source.source_format,
            limits=limits,
            validate=False,
            variables=deployment.variables,
        )
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
    resources = []
    for resource_id, (resource, record_id) in found.items():
        content = _with_meta(resource, now)
        resources.append(IndexedResource(resource_id, content, record_id, now, search_values(content, now)))
    deployment = do_finish_index(deployment, resources=resources, errors=errors, records=records)
    if connection.vendor == "postgresql" and len(resources) > BATCH:
        # Fresh statistics, or the planner keeps the empty-table estimates it had and searches take seconds.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE mappings_facaderesource, mappings_searchvalue")
    logger.info(
        "indexed deployment %s: %d %s from %d records, %d failed, %.0f ms",
        deployment.pk,
        len(resources),
        binding.resource_type,
        records,
        len(errors),
        (time.perf_counter() - started) * 1000,
    )
    return deployment


def _with_meta(resource: dict, now) -> dict:
    meta = dict(resource.get("meta") or {})
    meta["lastUpdated"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    meta["versionId"] = "1"
    return {**resource, "meta": meta}
