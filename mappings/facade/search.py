"""Search over a deployment's index: parse FHIR search parameters (modifiers, comma = OR, repeats = AND, date
prefixes) into queries on SearchValue, then page with absolute links."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import reduce

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from mappings import caches
from mappings.errors import FhirError, RequestCode
from mappings.facade.last_updated import last_updated
from mappings.facade.search_index import (
    PAIRED,
    SEP,
    SINGLE_VALUED,
    TAGS,
    date_range,
    paired_token,
    params_for,
    tag,
)
from mappings.models import FacadeResource, SearchValue

# _totalMethod: fhirpy sends it (an Aidbox option) with count(); the total is always exact here. _after: the next
# link's keyset cursor (the last id of the page before), see page_after.
RESULT_PARAMS = {
    "_after",
    "_count",
    "_offset",
    "_summary",
    "_elements",
    "_sort",
    "_format",
    "_pretty",
    "_total",
    "_totalMethod",
    "_include",
}
# _include=Type:param → the elements holding that reference (only references to resources this facade serves resolve)
INCLUDE_ELEMENTS = {
    "patient": ("subject", "patient", "beneficiary"),
    "subject": ("subject",),
    "performer": ("performer",),
    "encounter": ("encounter",),
    "practitioner": ("practitioner",),
}


def include_targets(resource_type: str, query: list[tuple[str, str]]) -> list[tuple[str, tuple[str, ...]]]:
    """[(target type or "", elements)] for each _include of this type; 400 for one this facade cannot follow."""
    found = []
    for name, raw in query:
        if name != "_include":
            continue
        parts = raw.split(":")
        if len(parts) not in (2, 3) or parts[0] != resource_type or parts[1] not in INCLUDE_ELEMENTS:
            raise FhirError(
                400, RequestCode.PARAMETER, f"_include={raw}: use {resource_type}:" + "|".join(INCLUDE_ELEMENTS)
            )
        found.append((parts[2] if len(parts) == 3 else "", INCLUDE_ELEMENTS[parts[1]]))
    return found


def references_in(resource: dict, elements: tuple[str, ...]) -> list[str]:
    found = []
    for element in elements:
        values = resource.get(element)
        for value in values if isinstance(values, list) else [values]:
            reference = value.get("reference") if isinstance(value, dict) else None
            if isinstance(reference, str) and reference.count("/") == 1:
                found.append(reference)
    return found


DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
MAX_COUNT = 500
DEFAULT_COUNT = 20
# What a database can bind: PostgreSQL's bigint and SQLite's integer are 64-bit.
MAX_BOUND = 2**63 - 1
# What one search may send to the database: SQLite refused ~500 OR-values of one param (its expression depth limit,
# 1,000), and a search should cost the database in proportion to what a client can sensibly ask.
MAX_VALUES = 100
MAX_CRITERIA = 20
SUMMARY = ("true", "false", "count", "text", "data")
TOTAL = ("none", "estimate", "accurate")
AP_SHARE = 0.1  # `ap`: a tenth of the distance to now, as the spec recommends (and HAPI does)


def approximate_range(low: datetime, high: datetime, now: datetime) -> tuple[datetime, datetime]:
    """`ap`'s range: the value's own [low, high) widened on each side by a tenth of that side's distance to now,
    within the dates Python and the databases hold."""
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    below, above = abs(now - low) * AP_SHARE, abs(now - high) * AP_SHARE
    wide_low = first if low - first <= below else low - below
    wide_high = last if last - high <= above else high + above
    return wide_low, wide_high


# Searched on the resource's last_updated() rather than on search values (the swap wrote one per resource, serially:
# ~2 s of a 100,000-record build): an instant, whose range is [t, t + 1 s) as those were.
STAMPED = "_lastUpdated"
SECOND = timedelta(seconds=1)


def _date_condition(raw: str, *, stamped: bool = False) -> Q:
    """The condition on a date search value (or, `stamped`, on the resource's last_updated) for one value."""
    prefix, text = (raw[:2], raw[2:]) if raw[:2] in DATE_PREFIXES else ("eq", raw)
    span = date_range(text)
    if span is None:
        raise FhirError(
            400,
            RequestCode.INVALID,
            f"'{raw}' is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime) between years 1 and 9999.",
        )
    low, high = span
    if prefix == "ap":
        low, high = approximate_range(low, high, datetime.now(UTC))
    # The date index holds dates alone (start IS NOT NULL): a comparison of start implies it, `ne` and `eb` say it so
    # that PostgreSQL can use the index (said for the others too, it would halve the planner's estimates).
    start, dated = ("stamp", Q()) if stamped else ("start", Q(start__isnull=False))

    def since(moment: datetime) -> Q:
        return Q(**{f"{start}__gte": moment})

    def before(moment: datetime) -> Q:
        return Q(**{f"{start}__lt": moment})

    def ends_by(moment: datetime) -> Q:
        return Q(stamp__lte=moment - SECOND) if stamped else Q(end__lte=moment)

    conditions = {
        "eq": since(low) & ends_by(high),
        "ap": since(low) & ends_by(high),
        "ne": dated & ~(since(low) & ends_by(high)),
        "gt": since(high),
        "sa": since(high),
        "ge": since(low),
        "lt": before(low),
        "eb": dated & ends_by(low),
        "le": before(high),
    }
    return conditions[prefix]


def _value_condition(kind: str, param: str, modifier: str, raw: str) -> Q:
    value = raw.strip().lower()
    if kind == "date":
        return _date_condition(raw.strip())
    if kind == "string":
        return Q(value=value) if modifier == "exact" else Q(value__startswith=value)
    if kind == "reference":
        if "/" not in value:
            value = f"patient/{value}"  # a bare id: patient and subject searches name Patients
        return Q(value=value)
    if modifier == "text":
        return Q(value__contains=value)
    if param in PAIRED:
        return _paired_condition(value)
    return Q(value=value)


def _paired_condition(value: str) -> Q:
    """A token with a system (search_index.paired_token): `code` or `system|code` (`|code`: no system); the second
    condition finds the two values per token of indexes built before."""
    system, bar, code = value.partition("|")
    if not bar:
        return Q(value__startswith=f"{value.replace(SEP, '')}{SEP}") | Q(value=value)
    return Q(value=paired_token(system, code)) | Q(value=value)


@contextmanager
def latency_plans() -> Iterator[None]:
    """Run a search's queries with no parallel plans (PostgreSQL): starting parallel workers cost the broad search's
    first page 17 ms for a query that takes 0.7 ms on its own (EXPLAIN ANALYZE, 100,000 Patients)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def search(
    resources: QuerySet[FacadeResource], resource_type: str, query: list[tuple[str, str]], build: int | None = None
) -> QuerySet:
    """The resources matching the query. `build`, the index key of the deployment `resources` belong to, lets each
    criterion read that index's search values alone."""
    criteria, filters = _criteria(resource_type, query, build)
    resources = resources.alias(stamp=last_updated())  # _lastUpdated's filters and sort (no join unless used)
    for rows, _ in criteria:
        resources = resources.filter(id__in=rows)
    for condition in filters:
        resources = resources.filter(condition)
    return resources


def count_matches(
    resources: QuerySet[FacadeResource],
    resource_type: str,
    query: list[tuple[str, str]],
    build: int | None,
    generation: int | None = None,
) -> int:
    """How many resources match: from the index's search values alone (the intersection of each criterion's resource
    ids: values keyed by the index are its resources) when there is a criterion and no condition on the resources
    themselves (:missing, which has to look at every resource, and _lastUpdated).

    With the facade's `generation`, a total is counted once per generation: an index changes only when a swap makes
    it live, which grows the generation, so a client paging through 22,220 matches is not counted again on each of
    its 1,111 pages (26 ms a count over 100,000 Patients)."""
    if build is None or generation is None:
        return _count(resources, resource_type, query, build)
    criteria = tuple(sorted((name, raw) for name, raw in query if name not in RESULT_PARAMS))
    key = (build, generation, resource_type, criteria)
    return caches.search_totals.get_or_build(key, lambda: _count(resources, resource_type, query, build))


def _count(
    resources: QuerySet[FacadeResource], resource_type: str, query: list[tuple[str, str]], build: int | None
) -> int:
    criteria, filters = _criteria(resource_type, query, build)
    if build is None or not criteria or filters:
        return search(resources, resource_type, query, build).count()
    if (tagged := tagged_rows(resource_type, query, build)) is not None:
        return tagged.count()
    # Counted over the rows of a criterion that has one value per resource, the others as semi-joins (PostgreSQL
    # hashes them: 2× faster than INTERSECT); with none, resources with several matching values are counted once.
    single = [rows for rows, param in criteria if param in SINGLE_VALUED]
    outer = single[0] if single else None
    rows = outer if outer is not None else criteria[0][0]
    for other, _ in criteria:
        if other is not rows:
            rows = rows.filter(resource_id__in=other)
    return rows.count() if outer is not None else rows.distinct().count()


def tagged_rows(resource_type: str, query: list[tuple[str, str]], build: int) -> QuerySet | None:
    """The rows to count for a search of one single-valued date and single-valued tokens (search_index.TAGS), one
    value each, e.g. gender=female&birthdate=ge1980: the date's values whose tag holds the tokens, one scan of the date
    index instead of a scan per criterion and their hash join. A date value written untagged ('', an index built
    before) is matched by semi-joins instead, which PostgreSQL runs only when it meets one. None for other searches."""
    supported = params_for(resource_type)
    dates, tokens = [], []
    for name, raw in query:
        if name in RESULT_PARAMS:
            continue
        kind, value = supported.get(name), raw.strip().lower()  # a name with a :modifier is not in `supported`
        if "," in raw or not value or SEP in value:
            return None
        if kind == "date" and name in SINGLE_VALUED:
            dates.append((name, raw.strip()))
        elif kind == "token" and name in TAGS:
            tokens.append((name, value))
        else:
            return None
    if len(dates) != 1 or not tokens:
        return None
    (param, raw), values = dates[0], SearchValue.objects.filter(build=build)
    untagged = Q(value="")
    for token, value in tokens:
        untagged &= Q(resource_id__in=values.filter(param=token, value=value).values("resource_id"))
    tagged = reduce(operator.and_, (Q(value__contains=tag(token, value)) for token, value in tokens))
    return values.filter(Q(param=param) & _date_condition(raw) & (tagged | untagged))


# A `name` value that repeats one of the resource's family or given names is stored under that param alone (a
# Patient's name values were 7 of its 33 search values), so a `name` search reads those params' values too.
NAME_PARTS = ("family", "given")


def stored_params(resource_type: str, param: str) -> tuple[str, ...]:
    """The params a search on `param` reads the values of."""
    if param != "name":
        return (param,)
    supported = params_for(resource_type)
    return (param, *(part for part in NAME_PARTS if part in supported))


def _criteria(
    resource_type: str, query: list[tuple[str, str]], build: int | None
) -> tuple[list[tuple[QuerySet, str]], list[Q]]:
    """([(the resource ids a criterion matches, its param)], [conditions on the resources themselves: :missing,
    _lastUpdated]); 400 for a parameter or modifier this type does not support."""
    supported = params_for(resource_type)
    values = SearchValue.objects.all() if build is None else SearchValue.objects.filter(build=build)
    criteria, filters = [], []
    for name, raw in query:
        if name in RESULT_PARAMS:
            continue
        param, _, modifier = name.partition(":")
        kind = supported.get(param)
        if kind is None:
            known = ", ".join(sorted(supported))
            raise FhirError(
                400, RequestCode.PARAMETER, f"{resource_type} has no search parameter '{param}'. Known: {known}."
            )
        if len(criteria) + len(filters) == MAX_CRITERIA:
            raise FhirError(
                400, RequestCode.INVALID, f"A search takes at most {MAX_CRITERIA} criteria (parameters with a value)."
            )
        params = stored_params(resource_type, param)
        stored = Q(param=param) if len(params) == 1 else Q(param__in=params)
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise FhirError(400, RequestCode.INVALID, f"{name}={raw}: :missing takes true or false.")
            if param == STAMPED:  # every resource has one
                filters.append(Q(pk__in=[]) if raw == "true" else Q())
                continue
            has = Q(id__in=values.filter(stored).values("resource_id"))
            filters.append(has if raw == "false" else ~has)
            continue
        if modifier not in ("", "exact", "text", "contains") or (modifier and kind == "date"):
            raise FhirError(400, RequestCode.PARAMETER, f"The modifier :{modifier} is not supported on '{param}'.")
        if modifier == "contains":
            modifier = "text"
        alternatives = [alternative for alternative in raw.split(",") if alternative.strip()]
        if len(alternatives) > MAX_VALUES:
            raise FhirError(
                400,
                RequestCode.INVALID,
                f"{name} has {len(alternatives)} values; a parameter takes at most {MAX_VALUES} (comma-separated).",
            )
        if param == STAMPED:
            filters.append(
                reduce(operator.or_, (_date_condition(value.strip(), stamped=True) for value in alternatives))
            )
            continue
        matches = Q()
        for alternative in alternatives:
            matches |= _value_condition(kind, param, modifier, alternative)
        criteria.append((values.filter(stored & matches).values("resource_id"), param))
    return criteria, filters


def paging(query: list[tuple[str, str]]) -> tuple[int, int]:
    """(_count, _offset), after checking the options every search reads (views call this first for every search,
    stored or live): 400 for a value no search can honour."""
    _check_options(query)
    values = dict(query)
    try:
        count = int(values.get("_count", DEFAULT_COUNT))
        offset = int(values.get("_offset", 0))
    except ValueError as exc:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset must be whole numbers.") from exc
    if count < 0 or offset < 0:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset cannot be negative.")
    if count > MAX_BOUND or offset > MAX_BOUND:
        raise FhirError(400, RequestCode.INVALID, f"_count and _offset must be at most {MAX_BOUND} (2^63 - 1).")
    return min(count, MAX_COUNT), offset


def _check_options(query: list[tuple[str, str]]) -> None:
    for name, raw in query:
        if "\x00" in name or "\x00" in raw:  # PostgreSQL cannot bind one, and no FHIR value holds one
            raise FhirError(400, RequestCode.INVALID, f"{name.replace(chr(0), '')}: a NUL character is not allowed.")
        if name == "_summary" and raw not in SUMMARY:
            raise FhirError(400, RequestCode.INVALID, f"_summary={raw}: use one of {', '.join(SUMMARY)}.")
        if name == "_total" and raw not in TOTAL:
            raise FhirError(400, RequestCode.INVALID, f"_total={raw}: use one of {', '.join(TOTAL)}.")


SORTS = {"_id": "resource_id", "-_id": "-resource_id", "_lastUpdated": "stamp", "-_lastUpdated": "-stamp"}


def page_after(query: list[tuple[str, str]]) -> dict | None:
    """The filter that starts a page after the id its `_after` names, when the order is by id: a next link carries
    it, so a page deep into a search starts from an index lookup instead of walking (and semi-joining) every match
    before it: `_offset=10000` of 22,220 matches took 215 ms that way. None when the page is found by `_offset`."""
    after, order = dict(query).get("_after"), keyset_order(query)
    if after is None or order is None:
        return None
    return {"resource_id__lt" if order == "-_id" else "resource_id__gt": after}


def keyset_order(query: list[tuple[str, str]]) -> str | None:
    """ "_id" or "-_id" when the results are ordered by id alone (a next link can then carry a cursor), else None."""
    sort = dict(query).get("_sort") or "_id"
    return sort if sort in ("_id", "-_id") else None


def ordering(query: list[tuple[str, str]]) -> list[str]:
    sort = dict(query).get("_sort")
    if not sort:
        return ["resource_id"]
    fields = []
    for key in sort.split(","):
        if key not in SORTS:
            raise FhirError(400, RequestCode.PARAMETER, f"_sort={key} is not supported; use {', '.join(SORTS)}.")
        fields.append(SORTS[key])
    return [*fields, "resource_id"]
