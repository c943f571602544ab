"""Deployments: a published version going live for a facade binding, as action → task → action.

1. `do_deploy` runs the version's samples outside any write transaction (the engine may take seconds, and on SQLite
   a write transaction holds the studio-wide lock) and records that run whatever its verdict; a failing run refuses
   the deploy. It then writes the Deployment and its audit row, and queues indexing when that commits.
2. The `index_deployment` Celery task runs the version over the source's records (mappings/jobs/indexing.py) with no
   transaction open. Small sources are indexed in this process right after the commit, so the deploy answers
   with its deployment ready; bigger ones by a worker, while the live deployment keeps serving.
3. `do_finish_index` swaps the new index in, marks the deployment live and grows the facade's generation, so every
   web worker serves it from its next request.

Actions queue the task by its registered name: this layer imports no task or job code."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import orjson
from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F

from mappings.actions.common import audit
from mappings.actions.samples import run_samples
from mappings.engine.formats.decimals import decimal_default
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    DataSource,
    Deployment,
    Facade,
    FacadeResource,
    MappingVersion,
    ResourceBinding,
    SearchValue,
    SourceRecord,
    TestRun,
)

logger = logging.getLogger(__name__)
INDEX_TASK = "mappings.tasks.index_deployment"
PLAN_INDEX_TASK = "mappings.tasks.plan_index"
INLINE_RECORDS = 500  # up to this many stored records, indexing runs in the deploying process after the commit
BATCH = 1000


@dataclass(frozen=True)
class IndexedResource:
    resource_id: str
    content: dict  # with meta.lastUpdated and versionId set
    record_id: int
    last_updated: datetime
    search_values: list[tuple[str, str, object, object]]  # (param, value, start, end)


def queue_indexing(deployment: Deployment) -> None:
    """Index the deployment once the current transaction commits: here for small sources, else on a worker."""
    inline = SourceRecord.objects.filter(source_id=deployment.binding.source_id).count() <= INLINE_RECORDS

    def start() -> None:
        if not inline:  # every worker takes chunks of the records
            current_app.tasks[PLAN_INDEX_TASK].delay(deployment.pk)
            return
        result = current_app.tasks[INDEX_TASK].apply(args=(deployment.pk,))
        if result.failed():  # the deployment stays pending; the previous one keeps serving
            logger.error("indexing deployment %s failed: %r", deployment.pk, result.result)

    transaction.on_commit(start)


def grow_generation(facade_id: int) -> None:
    """What the facade serves changed: every worker's cached view of it is stale from now on."""
    Facade.objects.filter(pk=facade_id).update(generation=F("generation") + 1)


@transaction.atomic(durable=True)
def _record_deploy_tests(version: MappingVersion, *, acting_user: AbstractBaseUser | None) -> TestRun:
    run = run_samples(version.mapping, version, acting_user=acting_user, trigger=TestRun.Trigger.DEPLOY)
    if run.failed:
        audit(
            acting_user,
            AuditAction.DEPLOY_REFUSED,
            version,
            mapping_slug=version.mapping.slug,
            after={"version": version.number, "test_run": run.pk, "failed": run.failed},
        )
    return run


def _go_live(
    binding: ResourceBinding,
    version: MappingVersion,
    *,
    variables: dict,
    acting_user: AbstractBaseUser | None,
    rollback_of: Deployment | None = None,
) -> Deployment:
    # Deployments still indexing will never serve now: a newer one takes their place.
    binding.deployments.pending().update(superseded=True)
    deployment = Deployment.objects.create(
        binding=binding, version=version, variables=variables, deployed_by=acting_user, rollback_of=rollback_of
    )
    if binding.source.kind == DataSource.Kind.STORED:
        queue_indexing(deployment)
    else:  # a live source is asked on each request: nothing to index, live at once
        binding.deployments.live().update(ready=False, superseded=True)
        deployment.ready = True
        deployment.save(update_fields=["ready"])
        grow_generation(binding.facade_id)
    return deployment


def do_deploy(
    binding: ResourceBinding,
    *,
    acting_user: AbstractBaseUser | None,
    version: MappingVersion,
    variables: dict | None = None,
) -> Deployment:
    """Make a published version live for a binding, gated by its samples: refused with 409 `tests_failing` (the
    recorded run in details.test_run) while any fails. Returns the deployment as it is once indexing has been
    started: ready when the source was small enough to index at once."""
    if version.mapping_id != binding.mapping_id:
        raise StudioError("invalid", f"Version {version.number} is not a version of '{binding.mapping.slug}'.")
    run = _record_deploy_tests(version, acting_user=acting_user)
    if run.failed:
        failing = [result["case"] for result in run.results if not result["passed"]]
        raise StudioError(
            "tests_failing",
            f"v{version.number} fails {run.failed} of its samples ({', '.join(failing)}); fix them before deploying.",
            details={"test_run": run.pk, "failing": failing},
            status_code=409,
        )
    deployment = _deploy(binding, version=version, variables=variables or {}, acting_user=acting_user, run=run)
    deployment.refresh_from_db()
    return deployment


@transaction.atomic(durable=True)
def _deploy(
    binding: ResourceBinding,
    *,
    version: MappingVersion,
    variables: dict,
    acting_user: AbstractBaseUser | None,
    run: TestRun,
) -> Deployment:
    deployment = _go_live(binding, version, variables=variables, acting_user=acting_user)
    audit(
        acting_user,
        AuditAction.DEPLOYED,
        deployment,
        mapping_slug=version.mapping.slug,
        after={"facade": binding.facade.slug, "resource_type": binding.resource_type, "version": version.number},
        test_run=run.pk,
    )
    return deployment


def do_rollback(binding: ResourceBinding, *, acting_user: AbstractBaseUser | None) -> Deployment:
    """Deploy again the version that was live before the current one (its samples passed when it went live)."""
    deployment = _rollback(binding, acting_user=acting_user)
    deployment.refresh_from_db()
    return deployment


@transaction.atomic(durable=True)
def _rollback(binding: ResourceBinding, *, acting_user: AbstractBaseUser | None) -> Deployment:
    history = binding.last_two_deployments()
    if len(history) < 2:
        raise StudioError("invalid", f"{binding.resource_type} has no earlier deployment to roll back to.")
    live, previous = history
    deployment = _go_live(
        binding, previous.version, variables=previous.variables, acting_user=acting_user, rollback_of=live
    )
    audit(
        acting_user,
        AuditAction.ROLLED_BACK,
        deployment,
        mapping_slug=binding.mapping.slug,
        before={"version": live.version.number},
        after={
            "facade": binding.facade.slug,
            "resource_type": binding.resource_type,
            "version": previous.version.number,
        },
    )
    return deployment


@transaction.atomic(durable=True)
def do_finish_index(
    deployment: Deployment, *, resources: Collection[IndexedResource], errors: list[dict], records: int
) -> Deployment:
    """Swap a deployment's freshly built index in and make it the live one (or re-index the live one). A deployment
    superseded while it was indexing is left as it is: a newer one takes its place. One whose binding (or facade)
    was deleted meanwhile is gone: nothing is written, and the caller's copy comes back unchanged. `resources` is
    read once (it may parse each resource as it is read)."""
    locked = (
        Deployment.objects.select_for_update(of=("self",)).select_related("binding__mapping").filter(pk=deployment.pk)
    ).first()
    if locked is None:
        logger.info("deployment %s was deleted while it was indexing; its index is dropped", deployment.pk)
        return deployment
    deployment = locked
    if deployment.superseded:
        return deployment
    binding = deployment.binding
    # Only the live deployment keeps an index; older ones keep their history row.
    drop_index(binding)
    binding.deployments.live().exclude(pk=deployment.pk).update(ready=False, superseded=True)
    if connection.vendor == "postgresql":
        _copy_index(deployment, resources)
    else:
        _insert_index(deployment, resources)
    deployment.indexed = len(resources)
    deployment.index_errors = errors[:100]
    deployment.ready = True
    deployment.save(update_fields=["indexed", "index_errors", "ready"])
    grow_generation(binding.facade_id)
    audit(
        None,
        AuditAction.INDEXED,
        deployment,
        mapping_slug=binding.mapping.slug,
        after={"indexed": len(resources), "failed": len(errors), "records": records},
    )
    return deployment


def drop_index(binding: ResourceBinding) -> None:
    """Delete every indexed resource of the binding's deployments, with their search values, in two statements (the
    ORM's delete would first load each resource, content and all, to cascade)."""
    resources, values = FacadeResource._meta.db_table, SearchValue._meta.db_table
    of_binding = f"SELECT id FROM {Deployment._meta.db_table} WHERE binding_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {values} WHERE resource_id IN "
            f"(SELECT id FROM {resources} WHERE deployment_id IN ({of_binding}))",
            [binding.pk],
        )
        cursor.execute(f"DELETE FROM {resources} WHERE deployment_id IN ({of_binding})", [binding.pk])


def _copy_index(deployment: Deployment, resources: Collection[IndexedResource]) -> None:
    """Write the index with PostgreSQL's COPY, reading `resources` once: their ids are taken from the sequence first,
    so the search values (COPY'd first; their foreign key has no database constraint) can name them, and only each
    resource's JSON text is kept for the second COPY."""
    quote = connection.ops.quote_name

    def copy_into(model: type[FacadeResource | SearchValue], fields: tuple[str, ...]) -> str:
        columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
        return f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"

    resource_type = deployment.binding.resource_type
    kept = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [FacadeResource._meta.db_table, len(resources)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(copy_into(SearchValue, ("resource", "param", "value", "start", "end"))) as copy:
            for pk, resource in zip(ids, resources, strict=True):
                for row in resource.search_values:
                    copy.write_row((pk, *row))
                content = orjson.dumps(resource.content, default=decimal_default).decode()  # 0.70 stays 0.70
                kept.append((pk, resource.resource_id, resource.record_id, content, resource.last_updated))
        fields = ("id", "resource_id", "record", "content", "last_updated", "deployment", "resource_type")
        with cursor.copy(copy_into(FacadeResource, fields)) as copy:
            for row in kept:
                copy.write_row((*row, deployment.pk, resource_type))


def _insert_index(deployment: Deployment, resources: Collection[IndexedResource]) -> None:
    resources = list(resources)
    created = FacadeResource.objects.bulk_create(
        [
            FacadeResource(
                deployment=deployment,
                resource_type=deployment.binding.resource_type,
                resource_id=resource.resource_id,
                record_id=resource.record_id,
                content=resource.content,
                last_updated=resource.last_updated,
            )
            for resource in resources
        ],
        batch_size=BATCH,
    )
    SearchValue.objects.bulk_create(
        [
            SearchValue(resource=row, param=param, value=value, start=start, end=end)
            for row, resource in zip(created, resources, strict=True)
            for param, value, start, end in resource.search_values
        ],
        batch_size=BATCH,
    )
