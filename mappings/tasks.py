"""Celery tasks: thin wrappers that take ids and call a `*_direct` function in mappings/jobs/. Payloads are read
from the database by the job, never carried through the broker. Actions queue these by name (INDEX_TASK)."""

from celery import shared_task

from mappings.jobs.batch import convert_batch_direct
from mappings.jobs.indexing import index_deployment_direct


@shared_task(queue="batch", acks_late=True, soft_time_limit=240, time_limit=300)
def convert_batch(version_id: int, source_id: int) -> dict:
    return convert_batch_direct(version_id, source_id)


@shared_task(queue="batch", acks_late=True, soft_time_limit=1800, time_limit=2000)
def index_deployment(deployment_id: int) -> int:
    return index_deployment_direct(deployment_id).indexed
