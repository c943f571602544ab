"""Celery tasks: thin wrappers that take ids and call a `*_direct` function in mappings/jobs/. Payloads are read
from the database by the job, never carried through the broker. Actions queue these by their registered name
(mappings/actions/deployments.py INDEX_TASK, mappings/jobs/chunks.py TASKS), so the action layer imports nothing of
this one.

Every task can run twice safely (a redelivered message after a worker crash, with acks_late): a chunk is claimed by
a conditional update, an export or batch chunk rewrites its own files, an index chunk's upsert of its staged rows
keeps the newest record's, and the swap happens once. Only a lost database connection is retried; a chunk's other
failures are recorded on its row and fail its job."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from mappings.jobs import batches, chunks, exports
from mappings.jobs.indexing import index_deployment_direct, plan_index_direct, run_index_chunk_direct
from mappings.jobs.messages import purge_messages_direct

RETRYABLE = (OperationalError, InterfaceError)
# Every job: acknowledged once done (a crashed worker's job runs again), retried with backoff only when the database
# connection was lost. Each task adds its queue and time limits.
JOB = {"acks_late": True, "autoretry_for": RETRYABLE, "retry_backoff": True, "max_retries": 3}


@shared_task(**JOB, queue="batch", soft_time_limit=1800, time_limit=2000)
def index_deployment(deployment_id: int) -> int:
    deployment = index_deployment_direct(deployment_id)
    return deployment.indexed if deployment else 0


@shared_task(**JOB, queue="batch", soft_time_limit=600, time_limit=660)
def plan_index(deployment_id: int) -> int:
    return plan_index_direct(deployment_id)


@shared_task(**JOB, queue="batch", soft_time_limit=900, time_limit=960)
def run_index_chunk(chunk_id: int) -> str:
    return run_index_chunk_direct(chunk_id)


@shared_task(**JOB, queue="exports", soft_time_limit=600, time_limit=660)
def plan_export(job_id: int) -> int:
    return exports.plan_export_direct(job_id)


@shared_task(**JOB, queue="exports", soft_time_limit=900, time_limit=960)
def run_export_chunk(chunk_id: int) -> str:
    return exports.run_export_chunk_direct(chunk_id)


@shared_task(**JOB, queue="batch", soft_time_limit=600, time_limit=660)
def plan_batch(batch_id: int) -> int:
    return batches.plan_batch_direct(batch_id)


@shared_task(**JOB, queue="batch", soft_time_limit=900, time_limit=960)
def run_batch_chunk(chunk_id: int) -> str:
    return batches.run_batch_chunk_direct(chunk_id)


@shared_task(queue="default", soft_time_limit=60, time_limit=90)
def requeue_stalled_chunks() -> int:
    return chunks.requeue_stalled_chunks()


@shared_task(queue="default", soft_time_limit=300, time_limit=360)
def delete_expired_exports() -> int:
    return exports.delete_expired_exports_direct()


@shared_task(queue="default", soft_time_limit=300, time_limit=360)
def purge_messages() -> int:
    return purge_messages_direct()
