"""Batch conversion: one mapping over many payloads, the body of the `convert_batch` Celery task (also called
directly by tests and scripts). Results are plain JSON so they travel through any result backend."""

from __future__ import annotations

from django.conf import settings

from mappings.conf import engine_limits
from mappings.engine import ErrorCode, MappingError, operation_outcome, run_mapping
from mappings.examples import find_example


def convert_batch_direct(mapping: str, payloads: list[str], *, source_format: str | None = None) -> list[dict]:
    """Run `mapping` on each payload; one result per payload, in order: {ok, output, issues, timings}."""
    example = find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], mapping)
    if example is None:
        error = MappingError(ErrorCode.TPL_UNKNOWN_SNIPPET, f"No mapping '{mapping}'.")
        return [{"ok": False, "output": None, "issues": operation_outcome([error]), "timings": {}} for _ in payloads]
    limits = engine_limits()
    try:
        compiled = example.compile(limits)
    except MappingError as error:
        return [{"ok": False, "output": None, "issues": operation_outcome([error]), "timings": {}} for _ in payloads]
    results = []
    for payload in payloads:
        result = run_mapping(compiled, payload, source_format=source_format, limits=limits)
        results.append({"ok": result.ok, "output": result.output, "issues": result.issues, "timings": result.timings})
    return results
