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

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mappings.actions.common import audit
from mappings.actions.index_rows import drop_index, served_instant, staging_key, swap_staged
from mappings.actions.samples import run_samples
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    DataSource,
    Deployment,
    Facade,
    MappingVersion,
    ResourceBinding,
    SourceRecord,
    TestRun,
)

logger = logging.getLogger(__name__)
INDEX_TASK = "mappings.tasks.index_deployment"
PLAN_INDEX_TASK = "mappings.tasks.plan_index"
INLINE_RECORDS = 500  # up to this many stored records, indexing runs in the deploying process after the commit


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
        if binding.source.kind == DataSource.Kind.FHIR_STORE:
            from mappings.actions.store import serve_store  # store imports this module

            serve_store(deployment)  # the store's resources as written, whatever the mapping
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
def do_finish_index(deployment: Deployment, *, errors: list[dict], records: int) -> Deployment:
    """Swap a deployment's freshly staged index in (mappings/actions/index_rows.py) and make it the live one (or
    re-index the live one). A deployment superseded while it was indexing is left as it is: a newer one takes its
    place, and the next swap drops what it staged. One whose binding (or facade) was deleted meanwhile is gone:
    nothing is written, and the caller's copy comes back unchanged."""
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
    binding.deployments.live().exclude(pk=deployment.pk).update(ready=False, superseded=True)
    key, now = staging_key(deployment), served_instant(timezone.now())
    drop_index(binding, swapping=deployment)
    deployment.indexed = swap_staged(deployment, key, now)
    deployment.index_key, deployment.served_since = key, now
    deployment.index_errors = errors[:100]
    deployment.ready = True
    deployment.save(update_fields=["indexed", "index_key", "served_since", "index_errors", "ready"])
    grow_generation(binding.facade_id)
    audit(
        None,
        AuditAction.INDEXED,
        deployment,
        mapping_slug=binding.mapping.slug,
        after={"indexed": deployment.indexed, "failed": len(errors), "records": records},
    )
    return deployment
