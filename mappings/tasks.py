"""Celery tasks: thin wrappers that take ids and call a `*_direct` function in mappings/jobs/. Payloads are read
from the database by the job, never carried through the broker. Actions queue these by their registered name
(mappings/actions/deployments.py INDEX_TASK), so the action layer imports nothing of this one.

Both jobs can run twice safely (a redelivered message after a worker crash, with acks_late): indexing swaps the
whole index in one transaction, and a batch run writes nothing. Only a lost database connection is retried."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from mappings.jobs.batch import convert_batch_direct
from mappings.jobs.indexing import index_deployment_direct

RETRYABLE = (OperationalError, InterfaceError)
# Every job: acknowledged once done (a crashed worker's job runs again), on the batch queue, retried with backoff only
# when the database connection was lost. Each task adds its own time limits.
JOB = {"queue": "batch", "acks_late": True, "autoretry_for": RETRYABLE, "retry_backoff": True, "max_retries": 3}


@shared_task(**JOB, soft_time_limit=240, time_limit=300)
def convert_batch(version_id: int, source_id: int) -> dict:
    return convert_batch_direct(version_id, source_id)


@shared_task(**JOB, soft_time_limit=1800, time_limit=2000)
def index_deployment(deployment_id: int) -> int:
    deployment = index_deployment_direct(deployment_id)
    return deployment.indexed if deployment else 0
