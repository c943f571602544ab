"""schemathesis against the studio API over HTTP (issue 15): a live server on 127.0.0.1, the schema read from its
/api/schema/, at least 1,000 generated cases, and every answer checked against that schema — no 5xx, only documented
statuses and content types, bodies that match their response schemas, and schema-breaking bodies refused. The
in-process run (test_schema.py) searches wider; this one sees what a client on the network sees, the studio's error
pages and middleware included.

Path parameters name the stored objects (the json-patient demo mapping, its snippet, lookup table and sample), so the
cases reach the actions rather than stopping at a 404."""

from __future__ import annotations

import contextlib
import math
import os
import time

import hypothesis
import pytest
import schemathesis
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from mappings import actions
from tests.api.test_schema import (
    Tracebacks,
    can_break,
    pinned_parameters,
    tracebacks,  # noqa: F401 — the fixture
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

MIN_CASES = 1000
TARGET_CASES = int(os.environ.get("FUZZ_CASES", "1300"))
SEED = int(os.environ.get("FUZZ_SEED", "20261206"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class LiveRun:
    def __init__(self, auth: dict[str, str], logged: Tracebacks) -> None:
        self.auth = auth
        self.tracebacks = logged
        self.statuses: list[int] = []
        self.failures: list[str] = []

    def send(self, case: schemathesis.Case, checks: list) -> None:
        self.tracebacks.texts.clear()
        response = case.call(headers=self.auth, timeout=30)
        self.statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as failures:
            reasons = "; ".join(sorted({f"{fail.title}: {fail.message[:300]}" for fail in failures.exceptions}))
            self.failures.append(
                f"{case.operation.method.upper()} {case.operation.path} → {response.status_code}: {reasons}\n"
                f"{case.as_curl_command(headers=self.auth)}\n{response.text[:400]}\n" + "\n".join(self.tracebacks.texts)
            )

    def fuzz(self, strategy, examples: int, checks: list) -> None:
        @hypothesis.seed(SEED)
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def send_each(case: schemathesis.Case) -> None:
            self.send(case, checks)

        # nothing left to break (every input pinned or free-form) generates nothing
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            send_each()


def test_a_live_studio_answers_1000_generated_cases_as_its_schema_says(
    transactional_db,
    live_server,
    json_patient,
    users,
    tracebacks,  # noqa: F811 — the fixture imported above
) -> None:
    actions.do_publish_version(json_patient, acting_user=users["admin"], message="v1 for the fuzzer")
    stored = {
        "slug": json_patient.slug,
        "snippet": "snippets/common/datatypes.j2",
        "table": "administrative-gender",
        "sample": "example-patient",
    }
    run = LiveRun({"Authorization": f"Token {Token.objects.create(user=users['admin']).key}"}, tracebacks)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")  # pinned objects live longer

    per_operation = max(9, math.ceil(TARGET_CASES / len(operations)))
    started = time.monotonic()
    for operation in operations:
        pinned = pinned_parameters(operation.path, stored)
        positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=pinned or None)
        run.fuzz(positive, per_operation * 2 // 3, CHECKS)
        if can_break(operation, pinned):
            negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, path_parameters=pinned or None)
            # A schema-breaking body must be refused. An optional query parameter sent empty (`?part=`) is taken as
            # absent, DRF's convention for query strings and forms, so breaking only those may rightly succeed.
            breaks_body = "requestBody" in operation.definition.raw
            run.fuzz(negative, per_operation // 3, [*CHECKS, negative_data_rejection] if breaks_body else CHECKS)
    elapsed = time.monotonic() - started

    print(f"\n{len(run.statuses)} cases over {len(operations)} operations in {elapsed:.0f} s")
    assert not run.failures, f"{len(run.failures)} failures:\n\n" + "\n\n".join(run.failures[:12])
    assert len(run.statuses) >= MIN_CASES, f"only {len(run.statuses)} cases over {len(operations)} operations"
    assert not [status for status in run.statuses if status >= 500]
