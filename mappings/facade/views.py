"""The facade's FHIR R4 REST API, base /fhir/<facade>/: metadata, read, search (GET and POST _search). What a type
serves is its binding's live deployment (the newest), answered from that deployment's index."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from psycopg import errors as psycopg_errors
from psycopg.pq import ConnStatus, ExecStatus

from mappings.access import (
    LiveDeployment,
    ServedFacade,
    access_facade_discovery,
    access_facade_request,
    access_served_type,
    last_served,
    live_deployments,
    served_facade,
)
from mappings.engine.formats import loads
from mappings.errors import FhirError, RequestCode
from mappings.facade.formats import CAPABILITY_FORMATS
from mappings.facade.http import fhir_response, smart_endpoint, wanted_format
from mappings.facade.last_updated import stamped, stamped_text
from mappings.facade.live import live_read, live_search
from mappings.facade.search import (
    RESULT_PARAMS,
    count_matches,
    include_targets,
    keyset_order,
    last_updated,
    latency_plans,
    ordering,
    page_after,
    paging,
    references_in,
    search,
)
from mappings.facade.search_index import params_for
from mappings.facade.store_capability import STORE_KIND, STORE_REST_INTERACTIONS, type_capability
from mappings.models import INDEXED_KINDS, DataSource, Deployment, Facade, FacadeResource
from mappings.security.discovery import security_statement
from mappings.security.enforcement import may, require

FHIR_VERSION = "4.0.1"
FORM = "application/x-www-form-urlencoded"
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
# $export at the three levels of the Bulk Data Access IG v2.0.0 (mappings/facade/bulk.py)
BULK_OPERATIONS = [
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
    {"name": "patient-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
    {"name": "group-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"},
]


# A read is the facade's hot path (about 1 ms in all): the query is written out because the ORM takes longer to build
# it than the database to answer, and the stored JSON text is returned as it is, never parsed and serialised again.
# A row staged as its deployment's own has no last_updated: it was last updated when its index started to serve.
READ_SQL = (
    f"SELECT d.served_since, CAST(r.content AS TEXT), r.last_updated FROM {Deployment._meta.db_table} d"
    f" LEFT JOIN {FacadeResource._meta.db_table} r"
    " ON r.deployment_id = d.id AND r.resource_type = %s AND r.resource_id = %s WHERE d.id = %s"
)
# The same read with the facade's state (access_facade_request's row) in one statement, so one round trip: from the
# deployment this worker last served the type from, kept only if the generation read with it still serves from there.
# A row without last_updated takes its deployment's served_since from this worker's memory (_served_since), kept per
# facade generation, which every swap grows: the subquery cost PostgreSQL 0.01 ms a read.
READ_WITH_STATE = (
    "SELECT f.id, f.generation, f.status, f.auth_mode, CAST(r.content AS TEXT), r.last_updated"
    f" FROM {Facade._meta.db_table} f LEFT JOIN {FacadeResource._meta.db_table} r"
    " ON r.deployment_id = %s AND r.resource_type = %s AND r.resource_id = %s WHERE f.slug = %s"
)
SERVED_SINCE_KEPT = 256
_served_since_kept: dict[tuple[int, int], datetime] = {}  # (deployment id, facade generation) → served_since


def _deployment(deployment_id: int) -> Deployment:
    """A live source's deployment with what asking the source needs (its frozen template loads on a compile miss)."""
    return (
        Deployment.objects.select_related("binding__source", "version")
        .defer("version__template", "version__snippets", "version__lookup_tables")
        .get(pk=deployment_id)
    )


def _base(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/").rstrip("/")


@csrf_exempt
@smart_endpoint
def metadata(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "metadata is read with GET.")
    facade, protected = access_facade_discovery(slug)  # open on a protected facade too: clients discover auth here
    live = live_deployments(facade)
    resources = [
        {
            "type": resource_type,
            **type_capability(live[resource_type].source_kind),  # a store's types are read and written
            "searchParam": _search_params(resource_type, live[resource_type].source_config),
        }
        for resource_type in sorted(live)
    ]
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": facade.updated_at.date().isoformat(),
        "publisher": "FHIR Studio",
        "kind": "instance",
        "software": {"name": "FHIR Studio"},
        "implementation": {"description": facade.title, "url": _base(request, slug)},
        "instantiates": [BULK_DATA],
        "fhirVersion": FHIR_VERSION,
        "format": CAPABILITY_FORMATS,
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "operation": [
                    {"name": "convert-data", "definition": f"{_base(request, slug)}/OperationDefinition/convert-data"},
                    {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
                    *BULK_OPERATIONS,
                ],
            }
        ],
    }
    if any(served.source_kind == STORE_KIND for served in live.values()):
        body["rest"][0]["interaction"] = STORE_REST_INTERACTIONS
    if protected:
        body["rest"][0]["security"] = security_statement(request, slug)
    return fhir_response(request, body)


def _search_params(resource_type: str, source_config: dict) -> list[dict]:
    if source_config.get("search") is not None:  # a live source: what its settings map (and _id, a read)
        return [{"name": "_id", "type": "token"}] + [
            {"name": name, "type": params_for(resource_type).get(name, "string")}
            for name in sorted(source_config["search"])
        ]
    return [{"name": name, "type": kind} for name, kind in sorted(params_for(resource_type).items())]


@csrf_exempt
@smart_endpoint
def resource_type_view(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method == "GET":
        return _search(request, slug, resource_type, list(request.GET.lists()))
    if request.method == "POST":
        raise FhirError(405, RequestCode.METHOD, f"This facade is read-only: {resource_type} cannot be created.")
    raise FhirError(405, RequestCode.METHOD, f"{request.method} is not supported on {resource_type}.")


@csrf_exempt
@smart_endpoint
def search_post(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, RequestCode.METHOD, "_search is POSTed with a form body.")
    if request.content_type != FORM:
        raise FhirError(415, RequestCode.FORMAT, f"POST _search takes {FORM}, not {request.content_type or 'nothing'}.")
    query = list(request.GET.lists()) + list(request.POST.lists())
    return _search(request, slug, resource_type, query)


@csrf_exempt
@smart_endpoint
def instance(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, f"This facade is read-only: {request.method} is not supported.")
    live, found = _read_stored(request, slug, resource_type, resource_id)
    require(request, resource_type, "r", "A read")
    if live.source_kind not in INDEXED_KINDS:
        return fhir_response(request, live_read(_deployment(live.id), resource_id))
    if found is None:
        raise FhirError(404, RequestCode.NOT_FOUND, f"{resource_type}/{resource_id} is not known.")
    text, last_updated = found
    if isinstance(last_updated, str):  # SQLite hands back the stored text (UTC)
        last_updated = datetime.fromisoformat(last_updated).replace(tzinfo=UTC)
    text = stamped_text(text, last_updated)
    # request.GET parses the query into a QueryDict: a read without one (most) need not build it
    pretty = request.META.get("QUERY_STRING") and request.GET.get("_pretty") == "true"
    if wanted_format(request) == "json" and not pretty:
        response = HttpResponse(text, content_type="application/fhir+json; charset=utf-8", charset="utf-8")
    else:
        response = fhir_response(request, loads(text))  # decimals keep their digits in XML and Turtle too
    response["ETag"] = 'W/"1"'
    response["Last-Modified"] = _http_date(last_updated)
    return response


@functools.lru_cache(maxsize=1024)  # as instant(): most rows of an index were last updated at one moment
def _http_date(moment: datetime) -> str:
    return http_date(moment.timestamp())


# READ_WITH_STATE prepared by name once per PostgreSQL connection and run through libpq (psycopg's pq layer) when
# nothing watches the connection's queries: a psycopg cursor and Django's wrapper around it cost a read about 0.08 ms
# of client CPU (benchmarked: 126 against 45 µs a statement), a third of what a read costs its worker beyond a
# static view. Values come back as text: two integers, two strings, the resource's JSON text and a timestamptz.
READ_STATEMENT = b"facade_read_with_state"
READ_WITH_STATE_NUMBERED = READ_WITH_STATE % ("$1", "$2", "$3", "$4")
_statement_prepared: WeakKeyDictionary = WeakKeyDictionary()  # psycopg connection → True once it holds the statement


def _read_with_state(deployment_id: int, resource_type: str, resource_id: str, slug: str) -> tuple | None:
    """READ_WITH_STATE's row: (facade id, generation, status, auth_mode, content text, last updated), or None when
    there is no such facade. Through a cursor where a cursor is needed: SQLite; prepared statements turned off (a
    pooler that cannot keep them); queries being logged or wrapped (DEBUG, a test counting them, execute_wrapper)."""
    params = [deployment_id, resource_type, resource_id, slug]
    if connection.vendor != "postgresql" or connection.queries_logged or connection.execute_wrappers:
        return _fetch_one(READ_WITH_STATE, params)
    if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return _fetch_one(READ_WITH_STATE, params)
    connection.ensure_connection()
    with connection.wrap_database_errors:  # psycopg's errors as Django's (a lost connection: 503, and closed)
        pgconn = connection.connection.pgconn
        if connection.connection not in _statement_prepared:
            _checked(pgconn.prepare(READ_STATEMENT, READ_WITH_STATE_NUMBERED.encode()))
            _statement_prepared[connection.connection] = True
        values = [str(deployment_id).encode(), resource_type.encode(), resource_id.encode(), slug.encode()]
        result = _checked(pgconn.exec_prepared(READ_STATEMENT, values))
        if not result.ntuples:
            return None
        facade_id, generation, status, auth_mode, content, updated = (result.get_value(0, at) for at in range(6))
        return (
            int(facade_id),
            int(generation),
            status.decode(),
            auth_mode.decode(),
            None if content is None else content.decode(),
            None if updated is None else datetime.fromisoformat(updated.decode()),
        )


def _checked(result):
    """The result, or the error psycopg's cursor would raise: OperationalError for a connection that was lost."""
    if result.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
        return result
    pgconn = connection.connection.pgconn
    if pgconn.status != ConnStatus.OK:
        message = (pgconn.error_message or b"the connection was lost").decode(errors="replace")
        raise psycopg_errors.OperationalError(message.strip())
    raise psycopg_errors.error_from_result(result, encoding=connection.connection.info.encoding)


def _fetch_one(sql: str, params: list) -> tuple | None:
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _prepared_cursor():
    """On PostgreSQL, a cursor that binds parameters on the server, so psycopg prepares a statement after its fifth
    run in a connection and PostgreSQL stops planning the read each time (0.06 ms of its 0.09 ms on the server).
    Django's own cursors bind on the client, which cannot prepare. Wrapped as Django wraps its own, so query
    logging and execute_wrapper see it too."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))


def _served_since(deployment_id: int, generation: int) -> datetime | str | None:
    """When the deployment's index started to serve, as of the facade's `generation`: a swap sets it and grows the
    generation in one transaction, so a worker learns it once per generation (a read's first, _read_stored)."""
    found = _served_since_kept.get((deployment_id, generation))
    if found is None:
        found = Deployment.objects.filter(pk=deployment_id).values_list("served_since", flat=True).first()
        _remember_served_since(deployment_id, generation, found)
    return found


def _remember_served_since(deployment_id: int, generation: int, served_since: datetime | str | None) -> None:
    if served_since is None:  # not serving yet: nothing to keep
        return
    if len(_served_since_kept) >= SERVED_SINCE_KEPT:
        _served_since_kept.clear()
    _served_since_kept[(deployment_id, generation)] = served_since


def _read_stored(
    request: HttpRequest, slug: str, resource_type: str, resource_id: str
) -> tuple[LiveDeployment, tuple | None]:
    """The live deployment serving the type and, when it is served from the index (a stored source or a FHIR store,
    whose read mappings/facade/store_views.py adds versions to), the resource's (text, last_updated) or None: in one
    statement with the facade's state when this worker has served the type before and nothing was deployed since,
    else in two."""
    guess = last_served(slug, resource_type)
    if guess is not None and guess.source_kind in INDEXED_KINDS:
        row = _read_with_state(guess.id, resource_type, resource_id, slug)
        facade = served_facade(slug, row[:4] if row else None, request)
        live = access_served_type(facade, resource_type)
        if live.id == guess.id:
            if row[4] is None:
                return live, None
            return live, (row[4], row[5] if row[5] is not None else _served_since(live.id, facade.generation))
    else:
        facade = access_facade_request(slug, request)
        live = access_served_type(facade, resource_type)
    if live.source_kind not in INDEXED_KINDS:
        return live, None
    with connection.cursor() as cursor:
        cursor.execute(READ_SQL, [resource_type, resource_id, live.id])
        row = cursor.fetchone()
    if row is None:  # the deployment was deleted since its facade's state was read
        return live, None
    served_since, text, last_updated = row
    _remember_served_since(live.id, facade.generation, served_since)
    return live, None if text is None else (text, last_updated if last_updated is not None else served_since)


def _search(request: HttpRequest, slug: str, resource_type: str, lists: list) -> HttpResponse:
    query = [(name, value) for name, values in lists for value in values]
    facade = access_facade_request(slug, request)
    live = access_served_type(facade, resource_type)
    require(request, resource_type, "s", "A search")
    count, offset = paging(query)
    summary = dict(query).get("_summary")
    note = last_id = None
    if live.source_kind not in INDEXED_KINDS:
        found, note = live_search(_deployment(live.id), query, RESULT_PARAMS)
        total, rows = len(found), [] if summary == "count" else found[offset : offset + count]
    else:
        served = FacadeResource.objects.filter(deployment_id=live.id, resource_type=resource_type)
        with latency_plans():
            matches = search(served, resource_type, query, live.index_key)
            # A store's writes change its index between the facade's generations: its totals are counted afresh.
            generation = facade.generation if live.source_kind == DataSource.Kind.STORED else None
            total = count_matches(served, resource_type, query, live.index_key, generation)
            page = matches.order_by(*ordering(query)).values_list("content", last_updated())
            after = page_after(query)
            page = page.filter(**after)[:count] if after else page[offset : offset + count]
            # Past the last match there is nothing to read: a search matching nothing would otherwise walk every
            # resource in id order looking for a first one (270 ms over 100,000 Patients).
            rows = [] if summary == "count" or total <= offset else [stamped(*row) for row in page]
        last_id = rows[-1]["id"] if rows and keyset_order(query) else None
    elements = [name for value in dict(query).get("_elements", "").split(",") if (name := value.strip())]
    base = _base(request, slug)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": _links(base, resource_type, query, offset, count, total, last_id),
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{content['id']}",
                "resource": _only(content, elements) if elements else content,
                "search": {"mode": "match"},
            }
            for content in rows
        ],
    }
    bundle["entry"] += _included(request, facade, base, resource_type, query, rows)
    if note:
        bundle["entry"].append({"resource": note, "search": {"mode": "outcome"}})
    if not bundle["entry"]:
        del bundle["entry"]
    return fhir_response(request, bundle)


def _included(
    request: HttpRequest, facade: ServedFacade, base: str, resource_type: str, query: list, rows: list[dict]
) -> list[dict]:
    """The resources a page's matches reference, for each _include (one query per referenced type), of the types the
    request may read."""
    wanted: dict[str, set[str]] = {}
    for target, elements in include_targets(resource_type, query):
        for row in rows:
            for reference in references_in(row, elements):
                kind, _, resource_id = reference.partition("/")
                if not target or kind == target:
                    wanted.setdefault(kind, set()).add(resource_id)
    entries = []
    served = live_deployments(facade)
    for kind, ids in sorted(wanted.items()):
        live = served.get(kind)
        if live is None or not may(request, kind, "r"):
            continue  # a type this facade does not serve, or the token may not read: nothing to include
        if live.source_kind not in INDEXED_KINDS:
            continue  # a live source would be asked once per reference: not cheap, so not included
        contents = FacadeResource.objects.filter(deployment_id=live.id, resource_type=kind, resource_id__in=ids)
        rows = contents.order_by("resource_id").values_list("content", last_updated())
        entries += [
            {"fullUrl": f"{base}/{kind}/{content['id']}", "resource": content, "search": {"mode": "include"}}
            for content in (stamped(*row) for row in rows)
        ]
    return entries


def _only(resource: dict, elements: list[str]) -> dict:
    kept = {key: value for key, value in resource.items() if key in elements or key in ("resourceType", "id", "meta")}
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [
        *meta.get("tag", []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    kept["meta"] = meta
    return kept


def _links(
    base: str, resource_type: str, query: list, offset: int, count: int, total: int, last_id: str | None
) -> list[dict]:
    """self, next and previous. A next link after a page ordered by id carries `_after` (its last id) beside the
    `_offset` it stands for, so the page is found from the index, however deep (mappings.facade.search.page_after)."""
    kept = [(name, value) for name, value in query if name not in ("_offset", "_format", "_after")]
    given = dict(query).get("_after")

    def url(at: int, after: str | None = None) -> str:
        position = [("_offset", str(at))] if at else []
        return f"{base}/{resource_type}?{urlencode([*kept, *position, *([('_after', after)] if after else [])])}"

    links = [{"relation": "self", "url": url(offset, given)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count, last_id)})
    if count and offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


@csrf_exempt
@smart_endpoint
def unknown(request: HttpRequest, slug: str, rest: str) -> HttpResponse:
    raise FhirError(
        404, RequestCode.NOT_FOUND, f"'{rest}' is not a FHIR endpoint of this facade (try {slug}/metadata)."
    )
