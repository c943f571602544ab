"""Request metrics of a facade over a recent window: volume, p50/p95 latency and errors, overall, per resource type
and per minute (the studio's chart), from the FacadeRequest access log."""

from __future__ import annotations

from collections import defaultdict
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


def _summary(rows: list[tuple]) -> dict:
    latencies = sorted(latency for _, _, latency, _ in rows)
    return {
        "requests": len(rows),
        "errors": sum(1 for _, status, _, _ in rows if status >= 400),
        "server_errors": sum(1 for _, status, _, _ in rows if status >= 500),
        "p50_ms": _percentile(latencies, 0.5),
        "p95_ms": _percentile(latencies, 0.95),
    }


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
            {"minute": minute, **{k: v for k, v in _summary(group).items() if k in ("requests", "errors", "p95_ms")}}
            for minute, group in sorted(by_minute.items())
        ],
    }
