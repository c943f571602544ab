"""Celery tasks: thin wrappers that take plain values and call a `*_direct` function."""

from celery import shared_task

from mappings.conversions import convert_batch_direct


@shared_task(queue="batch", acks_late=True, soft_time_limit=240, time_limit=300)
def convert_batch(mapping: str, payloads: list[str], source_format: str | None = None) -> list[dict]:
    return convert_batch_direct(mapping, payloads, source_format=source_format)


@shared_task(queue="batch", acks_late=True, soft_time_limit=1800, time_limit=2000)
def index_deployment(deployment_id: int) -> int:
    from mappings.facade.indexing import index_deployment_direct
    from mappings.models import Deployment

    deployment = Deployment.objects.select_related("binding", "version").get(pk=deployment_id)
    return index_deployment_direct(deployment).indexed
