"""Request metrics of a facade over a recent window: volume, p50/p95 latency and errors split by status class (4xx the
client's, 5xx the facade's), overall, per resource type and per minute (the studio's chart), from the FacadeRequest
access log."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from django.utils import timezone

from mappings.facade import request_log
from mappings.models import FacadeRequest

MAX_ROWS = 200_000  # a window busier than this is summarised from its newest rows


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return round(sorted_values[index], 2)


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def _summary(rows: list[tuple]) -> dict:
    latencies = sorted(latency for _, _, latency, _ in rows)
    classes = Counter(_status_class(status) for _, status, _, _ in rows)
    return {
        "requests": len(rows),
        "errors": classes["4xx"] + classes["5xx"],
        # A 4xx is the client's (a search the facade does not support, an id it does not have); a 5xx is ours.
        "client_errors": classes["4xx"],
        "server_errors": classes["5xx"],
        "by_status_class": dict(sorted(classes.items())),
        "p50_ms": _percentile(latencies, 0.5),
        "p95_ms": _percentile(latencies, 0.95),
    }


PER_MINUTE = ("requests", "errors", "client_errors", "server_errors", "p95_ms")


def facade_metrics(slug: str, minutes: int) -> dict:
    request_log.flush()  # this process's pending rows count too
    since = timezone.now() - timedelta(minutes=minutes)
    rows = list(
        FacadeRequest.objects.filter(facade_slug=slug, created_at__gte=since)
        .order_by("-created_at")
        .values_list("resource_type", "status", "latency_ms", "created_at")[:MAX_ROWS]
    )
    by_type: dict[str, list] = defaultdict(list)
    by_minute: dict[str, list] = defaultdict(list)
    for row in rows:
        by_type[row[0] or "(system)"].append(row)
        by_minute[row[3].replace(second=0, microsecond=0).isoformat()].append(row)
    return {
        "facade": slug,
        "minutes": minutes,
        **_summary(rows),
        "by_type": {name: _summary(group) for name, group in sorted(by_type.items())},
        "per_minute": [
            {"minute": minute, **{key: value for key, value in _summary(group).items() if key in PER_MINUTE}}
            for minute, group in sorted(by_minute.items())
        ],
    }
