"""Sample cases and test runs: a run of every sample against the draft or a version, recorded as a TestRun."""

from __future__ import annotations

import hashlib
import time

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from mappings.actions.common import apply_changes, audit
from mappings.compiling import compile_draft, compile_version
from mappings.engine import MappingError
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    Draft,
    Mapping,
    MappingVersion,
    SampleCase,
    TestRun,
)
from mappings.profiles import studio_registry
from mappings.samples import run_case

SAMPLE_FIELDS = ("payload", "source_format", "expected", "ignore_paths", "assertions")


# --- samples and test runs ------------------------------------------------------------------------------------------


def _sample_snapshot(sample: SampleCase) -> dict:
    return {"name": sample.name, "payload_sha256": hashlib.sha256(sample.payload.encode()).hexdigest()}


@transaction.atomic(durable=True)
def do_create_sample(
    mapping: Mapping, *, acting_user: AbstractBaseUser, name: str, payload: str, **fields: object
) -> SampleCase:
    try:
        with transaction.atomic():
            sample = SampleCase.objects.create(
                mapping=mapping,
                name=name,
                payload=payload,
                **{key: value for key, value in fields.items() if key in SAMPLE_FIELDS},
            )
    except IntegrityError as exc:
        raise StudioError("conflict", f"Mapping '{mapping.slug}' already has a sample '{name}'.") from exc
    audit(acting_user, AuditAction.SAMPLE_CREATED, sample, mapping_slug=mapping.slug, after=_sample_snapshot(sample))
    return sample


@transaction.atomic(durable=True)
def do_update_sample(sample: SampleCase, *, acting_user: AbstractBaseUser, **fields: object) -> SampleCase:
    before = _sample_snapshot(sample)
    changed = list(apply_changes(sample, fields, SAMPLE_FIELDS))
    audit(
        acting_user,
        AuditAction.SAMPLE_UPDATED,
        sample,
        mapping_slug=sample.mapping.slug,
        before=before,
        after=_sample_snapshot(sample),
        fields=changed,
    )
    return sample


@transaction.atomic(durable=True)
def do_delete_sample(sample: SampleCase, *, acting_user: AbstractBaseUser) -> None:
    audit(
        acting_user,
        AuditAction.SAMPLE_DELETED,
        sample,
        mapping_slug=sample.mapping.slug,
        before=_sample_snapshot(sample),
    )
    sample.delete()


def run_samples(
    mapping: Mapping, version: MappingVersion | None, *, acting_user: AbstractBaseUser, trigger: str
) -> TestRun:
    started = time.perf_counter()
    results = []
    draft = None if version else Draft.objects.get(mapping_id=mapping.pk)  # fresh: a save may just have happened
    try:
        compiled = compile_version(version) if version else compile_draft(mapping, draft=draft)
    except MappingError as error:
        compiled, compile_error = None, error
    registry = studio_registry()  # uploaded profiles a sample's output names in meta.profile
    for sample in mapping.samples.all():
        if compiled is None:
            results.append(
                {
                    "case": sample.name,
                    "passed": False,
                    "problems": [f"{compile_error.code}: {compile_error.message}"],
                    "issues": None,
                    "timings": {},
                }
            )
            continue
        outcome = run_case(
            compiled,
            sample.name,
            sample.payload,
            expected=sample.expected,
            assertions=sample.assertions,
            ignore_paths=sample.ignore_paths,
            source_format=sample.source_format or None,
            registry=registry,
        )
        results.append(
            {
                "case": sample.name,
                "passed": outcome.passed,
                "problems": outcome.problems,
                "issues": outcome.result.issues,
                "timings": outcome.result.timings,
                "errors": [error.as_dict() for error in outcome.result.errors],
            }
        )
    passed = sum(1 for result in results if result["passed"])
    return TestRun.objects.create(
        mapping=mapping,
        version=version,
        draft_revision=None if version else draft.revision,
        trigger=trigger,
        passed=passed,
        failed=len(results) - passed,
        results=results,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        created_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )


@transaction.atomic(durable=True)
def do_run_tests(
    mapping: Mapping,
    *,
    acting_user: AbstractBaseUser,
    version: MappingVersion | None = None,
    trigger: str = TestRun.Trigger.MANUAL,
) -> TestRun:
    """Run every sample of the mapping against the draft (or a version) and record the result."""
    run = run_samples(mapping, version, acting_user=acting_user, trigger=trigger)
    audit(
        acting_user,
        AuditAction.TESTS_RUN,
        run,
        mapping_slug=mapping.slug,
        after={"passed": run.passed, "failed": run.failed, "version": version.number if version else None},
    )
    return run
