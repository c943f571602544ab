"""Bulk Data exports: start one for a client, finish it when its last chunk ends, cancel it, delete its files.
The facade's kick-off and DELETE call these; the chunks' Celery tasks call `do_finish_export`; the retention beat task
calls `do_delete_export_files`. Tasks are queued by name after the commit (actions import no task code)."""

from __future__ import annotations

import logging

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from mappings.access import ServedFacade
from mappings.actions.common import audit
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.job_files import delete_files
from mappings.models import FINISHED, AuditAction, ChunkStatus, ExportJob, Facade, JobStatus, PatientGroup

logger = logging.getLogger(__name__)
PLAN_TASK = "mappings.tasks.plan_export"


@transaction.atomic(durable=True)
def do_start_export(
    facade: Facade | ServedFacade,
    *,
    client: str,
    level: str,
    group_id: str,
    request_url: str,
    parameters: dict,
    requires_access_token: bool,
) -> ExportJob:
    job = ExportJob.objects.create(
        facade_id=facade.id,
        level=level,
        group_id=group_id,
        request=request_url,
        parameters=parameters,
        transaction_time=timezone.now(),
        requires_access_token=requires_access_token,
        client=client[:200],
    )
    audit(None, AuditAction.EXPORT_STARTED, job, facade=facade.slug, client=client, request=request_url)
    transaction.on_commit(lambda: current_app.tasks[PLAN_TASK].delay(job.pk))
    return job


@transaction.atomic
def do_finish_export(job_id: int) -> ExportJob | None:
    """Complete the job once every chunk is done, or fail it when one failed for good; None while chunks run.
    The job row is locked, so two chunks ending together finish it once."""
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    if job.status in FINISHED:
        return None
    states = set(job.chunks.values_list("status", flat=True))
    if ChunkStatus.FAILED in states:
        failed = job.chunks.filter(status=ChunkStatus.FAILED).first()
        return _fail(job, f"Part {failed.number} of {failed.resource_type} failed: {failed.error}")
    if states - {ChunkStatus.DONE}:
        return None
    job.status, job.finished_at = JobStatus.COMPLETED, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    counts = job.chunks.values_list("done", "failed")
    audit(
        None,
        AuditAction.EXPORT_FINISHED,
        job,
        status=job.status,
        resources=sum(done for done, _ in counts),
        failed=sum(failed for _, failed in counts),
    )
    return job


@transaction.atomic
def do_fail_export(job_id: int, message: str) -> ExportJob | None:
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    return None if job.status in FINISHED else _fail(job, message)


def _fail(job: ExportJob, message: str) -> ExportJob:
    job.status, job.finished_at = JobStatus.FAILED, timezone.now()
    job.error = operation_outcome([FhirError(500, RequestCode.EXPORT_FAILED, message)])
    job.save(update_fields=["status", "finished_at", "error"])
    job.chunks.filter(status__in=(ChunkStatus.QUEUED, ChunkStatus.RUNNING)).update(status=ChunkStatus.CANCELLED)
    audit(None, AuditAction.EXPORT_FINISHED, job, status=job.status, error=message)
    logger.error("export %s failed: %s", job.pk, message)
    return job


@transaction.atomic(durable=True)
def do_cancel_export(job: ExportJob, *, client: str) -> ExportJob:
    """A client's DELETE: a running export stops (its chunks see it at their next heartbeat) and, like a finished
    one, loses its files. Its status URL answers 404 from then on."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)
    was = job.status
    if job.status not in FINISHED:
        job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
        job.save(update_fields=["status", "finished_at"])
        job.chunks.exclude(status__in=(ChunkStatus.DONE, ChunkStatus.FAILED)).update(status=ChunkStatus.CANCELLED)
    audit(None, AuditAction.EXPORT_CANCELLED, job, client=client, status_before=was)
    _delete_files_after_commit(job)
    return job


@transaction.atomic(durable=True)
def do_delete_export_files(job: ExportJob, *, reason: str) -> int:
    """Remove a finished export's files (retention ran out). Returns how many files there were."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)
    if job.files_deleted_at is not None:
        return 0
    names = _delete_files_after_commit(job)
    audit(None, AuditAction.EXPORT_FILES_DELETED, job, reason=reason, files=len(names))
    return len(names)


def _delete_files_after_commit(job: ExportJob) -> list[str]:
    job.files_deleted_at = timezone.now()
    job.save(update_fields=["files_deleted_at"])
    names = [file["name"] for files in job.chunks.values_list("files", flat=True) for file in files]
    # A chunk still running when the job was cancelled writes its file after this: it sees the cancel at its next
    # heartbeat and discards what it wrote instead of storing it.
    transaction.on_commit(lambda: delete_files(names))
    return names


@transaction.atomic(durable=True)
def do_save_patient_group(
    facade: Facade, *, acting_user: AbstractBaseUser, group_id: str, name: str, patient_ids: list[str]
) -> PatientGroup:
    """Define (or redefine) Group/<group_id> for `$export`: the patients it lists, by the ids the facade serves."""
    before = PatientGroup.objects.filter(facade=facade, group_id=group_id).values("name", "patient_ids").first()
    group, _ = PatientGroup.objects.update_or_create(
        facade=facade, group_id=group_id, defaults={"name": name, "patient_ids": list(dict.fromkeys(patient_ids))}
    )
    audit(
        acting_user,
        AuditAction.GROUP_SAVED,
        group,
        before=before,
        after={"facade": facade.slug, "group_id": group_id, "patients": len(group.patient_ids)},
    )
    return group


@transaction.atomic(durable=True)
def do_delete_patient_group(group: PatientGroup, *, acting_user: AbstractBaseUser) -> None:
    before = {"facade": group.facade.slug, "group_id": group.group_id, "patients": len(group.patient_ids)}
    audit(acting_user, AuditAction.GROUP_DELETED, group, before=before)
    group.delete()
