"""The OpenAPI 3 schema at /api/schema/ is valid and describes every studio endpoint, Swagger UI serves it, and
schemathesis, generating requests from that schema, gets no 5xx from any of them.

The fuzz run goes through the Django app in-process (schemathesis' WSGI transport) on the test database, as an admin
with a token, against real data: the json-patient demo mapping with a published version, its snippet, lookup table and
sample. Each operation is driven twice — once with generated path parameters, once pinned to those stored objects so
the bodies reach the actions and the engine — with schema-conforming (positive) and schema-breaking (negative) input.
Hypothesis is seeded, so a run is reproducible; a 5xx is reported with the request (as curl) and the server's
traceback."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis.strategies import SearchStrategy
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

from mappings import actions
from mappings.models import Mapping

pytestmark = pytest.mark.django_db

STUDIO_PATHS = [
    "/api/mappings/",
    "/api/mappings/{slug}/draft",
    "/api/mappings/{slug}/versions/",
    "/api/mappings/{slug}/versions/{n}",
    "/api/mappings/{slug}/versions/{n}/diff",
    "/api/mappings/{slug}/versions/{n}/restore",
    "/api/mappings/{slug}/render",
    "/api/mappings/{slug}/samples/",
    "/api/mappings/{slug}/test-runs/",
    "/api/snippets/",
    "/api/snippets/{name}",
    "/api/snippets/{name}/versions/",
    "/api/lookup-tables/",
    "/api/lookup-tables/{name}",
    "/api/lookup-tables/{name}/versions/",
    "/api/lookup-tables/{name}/import",
    "/api/audit/",
]
MIN_CASES = 500
# Spread over the operations, positive and negative cases 2:1. FUZZ_CASES and FUZZ_SEED run a longer or different
# search by hand (FUZZ_CASES=8000 sends ~7,000 requests in ~4 minutes here); the suite keeps the defaults.
TARGET_CASES = int(os.environ.get("FUZZ_CASES", "900"))
SEED = int(os.environ.get("FUZZ_SEED", "20260401"))


def test_it_serves_a_valid_openapi_3_schema(client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)


@pytest.mark.parametrize("path", STUDIO_PATHS)
def test_it_describes_every_studio_endpoint(client, path) -> None:
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    # Path parameters may be named differently by the views; compare the templates with names blanked.
    shapes = {shape(known): known for known in paths}
    assert shape(path) in shapes, f"{path} is not in the schema; it has {sorted(paths)}"
    described = paths[shapes[shape(path)]]
    assert all("responses" in operation for operation in described.values() if isinstance(operation, dict))


def shape(path: str) -> str:
    parts = path.split("/")
    return "/".join("{}" if part.startswith("{") and part.endswith("}") else part for part in parts)


def test_it_serves_swagger_ui_from_the_studio_itself(client) -> None:
    """No CDN: every script and stylesheet of the page is served by the studio (Swagger UI from the sidecar package,
    gzipped, with the package's version so it can be cached for good)."""
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assets = re.findall(r'<(?:script\b[^>]*\bsrc|link rel="(?:stylesheet|modulepreload)" href)="([^"]+)"', page)
    assert len(assets) >= 3, assets  # the studio's stylesheet, Swagger UI's stylesheet and script
    assert not [url for url in assets if re.match(r"(https?:)?//", url)], assets
    bundle = next(url for url in assets if "swagger-ui-bundle.js" in url)
    assert bundle.startswith("/api/docs/swagger-ui/") and "?v=" in bundle
    for url in assets:
        if url.startswith("/"):
            served = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
            assert served.status_code == 200, url
            assert "immutable" in served["Cache-Control"], url
    packed = client.get(bundle, HTTP_ACCEPT_ENCODING="gzip, br")
    assert packed["Content-Encoding"] == "gzip" and len(packed.content) < 600_000
    assert b"SwaggerUIBundle" in client.get(bundle).content  # and plain to a client that takes no gzip
    assert client.get("/api/docs/swagger-ui/LICENSE").status_code == 404
    assert 'data-schema-url="/api/docs/schema.json' in page  # the schema Swagger UI reads is the studio's
    # Swagger UI starts from a page script (no inline script: the Content-Security-Policy), built and versioned
    starter = next(url for url in assets if url.startswith("/static/build/api_docs.js?v="))
    script = b"".join(client.get(starter).streaming_content).decode()
    assert "onComplete" in script  # it marks body[data-ready], as every studio page does
    assert "validatorUrl:null" in script  # no badge from validator.swagger.io (asked for on any host but localhost)


# --- fuzzing ------------------------------------------------------------------------------------------------------


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Django closes "old" connections around each request; inside the test's transaction that would end it (the
    test client disconnects the same handlers for the same reason)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Tracebacks(logging.Handler):
    """Keeps the tracebacks the server logs while answering one request."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("mappings", "django.request")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def pinned_parameters(path: str, stored: dict[str, object]) -> dict[str, object]:
    """Path parameters naming the stored objects, by parameter name and the collection the path is about."""
    pinned: dict[str, object] = {}
    for part in path.split("/"):
        if not (part.startswith("{") and part.endswith("}")):
            continue
        name = part[1:-1]
        if name == "slug":
            pinned[name] = stored["slug"]
        elif name in ("n", "number", "version"):
            pinned[name] = 1
        elif name == "name" and path.startswith("/api/snippets/"):
            pinned[name] = stored["snippet"]
        elif name == "name" and path.startswith("/api/lookup-tables/"):
            pinned[name] = stored["table"]
        elif name in ("name", "sample"):
            pinned[name] = stored["sample"]
    return pinned


def can_break(operation: schemathesis.APIOperation, pinned: dict[str, object]) -> bool:
    """Whether a negative case exists: a body, a query or header parameter, or a path parameter that is generated
    and is not a plain string (any string is a valid string, and a URL path is made of strings)."""
    raw = operation.definition.raw
    for parameter in raw.get("parameters", []):
        if parameter["in"] in ("query", "header"):
            return True
        generated = parameter["in"] == "path" and parameter["name"] not in pinned
        if generated and parameter.get("schema", {}).get("type") != "string":
            return True
    return "requestBody" in raw


@dataclass
class FuzzRun:
    auth: dict[str, str]
    tracebacks: Tracebacks
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def send(self, case: schemathesis.Case) -> None:
        self.tracebacks.texts.clear()
        response = case.call(headers=self.auth)
        self.statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup:  # keep going, to report every 5xx of the run at once
            self.failures.append(
                f"{case.operation.method.upper()} {case.operation.path} → {response.status_code}\n"
                f"{case.as_curl_command(headers=self.auth)}\n{response.text[:500]}\n" + "\n".join(self.tracebacks.texts)
            )

    def fuzz(self, strategy: SearchStrategy, examples: int) -> None:
        @hypothesis.seed(SEED)
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def send_each(case: schemathesis.Case) -> None:
            self.send(case)

        # A negative strategy with nothing left to break (every input pinned or free-form) generates nothing.
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            send_each()


def test_it_answers_no_generated_request_with_a_server_error(
    json_patient: Mapping, users, in_process_requests, tracebacks
) -> None:
    actions.do_publish_version(json_patient, acting_user=users["admin"], message="v1 for the fuzzer")
    stored = {
        "slug": json_patient.slug,
        "snippet": "snippets/common/datatypes.j2",
        "table": "administrative-gender",
        "sample": "example-patient",
    }
    run = FuzzRun(
        auth={"Authorization": f"Token {Token.objects.create(user=users['admin']).key}"}, tracebacks=tracebacks
    )
    schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")  # pinned objects live longer

    per_variant = max(9, math.ceil(TARGET_CASES / (2 * len(operations))))
    examples = {GenerationMode.POSITIVE: per_variant * 2 // 3, GenerationMode.NEGATIVE: per_variant // 3}
    started = time.monotonic()
    for operation in operations:
        for pinned in ({}, pinned_parameters(operation.path, stored)):
            for mode in examples if can_break(operation, pinned) else [GenerationMode.POSITIVE]:
                run.fuzz(operation.as_strategy(generation_mode=mode, path_parameters=pinned or None), examples[mode])
    elapsed = time.monotonic() - started

    assert not run.failures, f"{len(run.failures)} server errors:\n\n" + "\n\n".join(run.failures[:10])
    assert len(run.statuses) >= MIN_CASES, f"only {len(run.statuses)} cases over {len(operations)} operations"
    assert elapsed < 150 * TARGET_CASES / 900, f"the fuzz run took {elapsed:.0f} s"
