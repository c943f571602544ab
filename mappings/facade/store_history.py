"""`_history` of a FHIR store as a history Bundle (FHIR R4 http.html#history), at instance, type and system level:
the views in store_views.py choose which versions (which store, which types the request may read); this module pages
through them and writes the Bundle.

Newest first: by last_updated, then by row id (one transaction's versions share an instant). `_count` (default 50, at
most 500), `_since` (versions written at or after an instant), `_at` (the versions current at some point of a year,
month or day, or the one current at an instant). Paging is by keyset: the `next` link carries the last entry's
(instant, row id) in `_cursor`, so a page is an index range read however deep, and versions written while a client
pages (they sort first) neither repeat an entry nor hide one; `_offset` is still read, for old links."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Exists, OuterRef, Q, QuerySet

from mappings.actions.store import instant
from mappings.errors import FhirError, RequestCode
from mappings.facade.search_index import date_range
from mappings.models import StoreVersion

HISTORY_COUNT, MAX_HISTORY_COUNT = 50, 500
STATUS = {"POST": "201 Created", "DELETE": "204 No Content"}  # else (PUT, PATCH) 200 OK
PAGING = ("_offset", "_cursor", "_format")  # left out of a next link's copy of the query (it sets its own)


def history_bundle(versions: QuerySet[StoreVersion], query: list[tuple[str, str]], base: str, path: str) -> dict:
    """One page of `versions` (already narrowed to what the request may read) as a history Bundle; `path` is the
    history's URL without the query, `base` the facade's."""
    values = dict(query)
    count, offset = _paging(values)
    if "_since" in values:
        versions = versions.filter(last_updated__gte=_instant(values["_since"], "_since"))
    if "_at" in values:
        versions = _current_during(versions, values["_at"])
    total = versions.count()
    page = versions
    if "_cursor" in values:
        moment, row_id = _cursor(values["_cursor"])
        page = page.filter(Q(last_updated__lt=moment) | Q(last_updated=moment, id__lt=row_id))
    fields = ("id", "resource_type", "resource_id", "version_id", "method", "content", "last_updated")
    # One row more than the page: whether there is a next page, without a query more.
    rows = list(page.order_by("-last_updated", "-id").values_list(*fields)[offset : offset + count + 1])
    more, rows = len(rows) > count, rows[:count]
    links = [{"relation": "self", "url": f"{path}?{urlencode(query)}" if query else path}]
    if more and rows:
        kept = [(name, value) for name, value in query if name not in PAGING]
        last_id, last_updated = rows[-1][0], rows[-1][6]
        after = [("_cursor", f"{last_updated.isoformat()}~{last_id}")]
        links.append({"relation": "next", "url": f"{path}?{urlencode([*kept, *after])}"})
    bundle = {"resourceType": "Bundle", "type": "history", "total": total, "link": links}
    entries = [_entry(base, *row[1:]) for row in rows]
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(
    base: str, resource_type: str, resource_id: str, version_id: int, method: str, content, last_updated: datetime
) -> dict:
    """A version as a history entry: the resource as written (none for a delete), the request that wrote it and
    what the store answered."""
    entry: dict = {"fullUrl": f"{base}/{resource_type}/{resource_id}"}
    if content is not None:
        entry["resource"] = content
    entry["request"] = {
        "method": method,
        "url": resource_type if method == "POST" else f"{resource_type}/{resource_id}",
    }
    entry["response"] = {"status": STATUS.get(method, "200 OK"), "etag": f'W/"{version_id}"'}
    if method != "DELETE":
        entry["response"]["location"] = f"{resource_type}/{resource_id}/_history/{version_id}"
    entry["response"]["lastModified"] = instant(last_updated)
    return entry


def _paging(values: dict[str, str]) -> tuple[int, int]:
    try:
        count = min(int(values.get("_count", HISTORY_COUNT)), MAX_HISTORY_COUNT)
        offset = int(values.get("_offset", 0))
    except ValueError:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset must be whole numbers.") from None
    if count < 0 or offset < 0:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset cannot be negative.")
    return count, offset


def _instant(raw: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, RequestCode.INVALID, f"{name}={raw} is not an instant.") from None
    if moment.tzinfo is None:
        raise FhirError(400, RequestCode.INVALID, f"{name} needs a time zone (an instant: ...Z or +hh:mm).")
    return moment


def _cursor(raw: str) -> tuple[datetime, int]:
    moment, _, row_id = raw.rpartition("~")
    if not row_id.isdigit():
        raise FhirError(400, RequestCode.INVALID, f"_cursor={raw} is not a cursor of a next link.")
    return _instant(moment, "_cursor"), int(row_id)


def _current_during(versions: QuerySet[StoreVersion], raw: str) -> QuerySet[StoreVersion]:
    """The versions current at some point of `raw`: during a date (a year, month or day), those written in it and,
    for each resource, the one current at its start (the newest written by then); at an instant, that one only."""
    period = date_range(raw)
    if period is None:
        raise FhirError(400, RequestCode.INVALID, f"_at={raw} is not a FHIR date, dateTime or instant.")
    start, end = period
    if len(raw) > 10:  # a time of day: a moment, not a period
        end = start
    newer_by_start = StoreVersion.objects.filter(
        source_id=OuterRef("source_id"),
        resource_type=OuterRef("resource_type"),
        resource_id=OuterRef("resource_id"),
        version_id__gt=OuterRef("version_id"),
        last_updated__lte=start,
    )
    return versions.filter(
        Q(last_updated__gte=start, last_updated__lt=end) | (Q(last_updated__lte=start) & ~Exists(newer_by_start))
    )
