"""Dates and times: HL7 v2 TS / DTM, C-CDA TS and ISO strings → FHIR date, dateTime and instant.

HL7 TS is `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`. FHIR dateTime with a time needs seconds and an offset, so when
the source omits the offset the mapping's time zone is used (never the server's), and when it omits seconds `:00` is
added. Impossible dates (2023-02-30, month 13) become nothing and leave a warning, rather than invalid FHIR.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import pass_environment

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.limits import current_budget, template_line_here

HL7_TS = re.compile(
    r"^(?P<year>\d{4})(?:(?P<month>\d{2})(?:(?P<day>\d{2})(?:(?P<hour>\d{2})(?:(?P<minute>\d{2})"
    r"(?:(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?)?)?)?)?(?P<offset>[+-]\d{4}|Z)?$"
)
ISO = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?)?)?)?(?P<offset>[+-]\d{2}:?\d{2}|Z)?$"
)


def _warn(env, value: object, target: str) -> None:
    budget = current_budget()
    if budget is not None:
        error = MappingError(ErrorCode.RND_FILTER_INPUT, f"'{value}' is not a valid {target}; the value was left out.")
        budget.warn(error.located(*template_line_here(env)))


def _parts(value: object) -> tuple | None:
    """The TS or ISO text's (year, month, day, hour, minute, second, fraction, offset), absent ones None: a tuple,
    since a dict of the groups (`groupdict`) cost more than the conversion that reads it."""
    text = str(value or "").strip()
    if not text:
        return None
    match = HL7_TS.match(text) or ISO.match(text)
    return match.groups() if match else None


def _zone(name: str):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _format_offset(delta: timedelta | None) -> str:
    if delta is None:
        return "Z"
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return "+00:00"
    sign = "+" if minutes > 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _checked_date(year: str, month: str | None, day: str | None) -> bool:
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return year != "0000"


def _date_text(year: str, month: str | None, day: str | None) -> str:
    if not month:
        return year
    return f"{year}-{month}-{day}" if day else f"{year}-{month}"


def _offset_text(parts: tuple, zone_name: str) -> str | None:
    year, month, day, hour, minute, _, _, offset = parts
    if offset == "Z":
        return "Z"
    if offset:
        digits = offset.replace(":", "")
        hours, minutes = int(digits[1:3]), int(digits[3:5])
        if hours > 14 or minutes > 59:
            return None
        return f"{digits[0]}{digits[1:3]}:{digits[3:5]}"
    local = datetime(int(year), int(month), int(day), int(hour), int(minute or 0))
    return _format_offset(local.replace(tzinfo=_zone(zone_name)).utcoffset())


def _datetime_text(parts: tuple, zone_name: str, *, instant: bool) -> str | None:
    year, month, day, hour, minute, second, fraction, _ = parts
    if not _checked_date(year, month, day):
        return None
    if not hour or not day:
        return None if instant else _date_text(year, month, day)
    hour, minute, second = int(hour), int(minute or 0), int(second or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = _offset_text(parts, zone_name)
    if offset is None:
        return None
    fraction = f".{fraction}" if fraction else ""
    return f"{year}-{month}-{day}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"


def _quick_date(text: str) -> str | None:
    """YYYYMMDD → YYYY-MM-DD without the regex, for a plain date whose day is at most 28 (valid in every month);
    None for anything else, which the general code then decides (warnings included)."""
    if len(text) == 8 and text.isdigit() and text.isascii():
        month, day = text[4:6], text[6:]
        if "01" <= month <= "12" and "01" <= day <= "28" and text[:4] != "0000":
            return f"{text[:4]}-{month}-{day}"
    return None


def _quick_datetime(text: str) -> str | None:
    """The TS shapes senders mostly use, YYYYMMDD and YYYYMMDDHHMM[SS]±ZZZZ, converted as the general code converts
    them, without the regex, integers or a date object; None for any other text (or an edge the general code must
    judge: a day past 28, a time without an offset, a fraction), which then goes the general way."""
    size = len(text)
    if size == 8:
        return _quick_date(text)
    if (size != 17 and size != 19) or text[-5] not in "+-":
        return None
    digits = text[:-5] + text[-4:]
    if not (digits.isdigit() and digits.isascii()):
        return None
    date_text = _quick_date(text[:8])
    hour, minute, second = text[8:10], text[10:12], text[12:14] if size == 19 else "00"
    if date_text is None or hour > "23" or minute > "59" or second > "59" or text[-4:-2] > "14" or text[-2:] > "59":
        return None
    return f"{date_text}T{hour}:{minute}:{second}{text[-5:-2]}:{text[-2:]}"


def _converted(env, value: object, zone: str | None, *, instant: bool) -> str | None:
    if type(value) is not str:
        value = str(value or "")
    quick = _quick_datetime(value.strip())
    if quick is not None and (not instant or len(quick) > 10):
        return quick
    parts = _parts(value)
    result = None if parts is None else _datetime_text(parts, zone or env.timezone, instant=instant)
    if result is None and str(value or "").strip():
        _warn(env, value, "instant" if instant else "date/time")
    return result


@pass_environment
def fhir_datetime(env, value: object, zone: str | None = None) -> str | None:
    """HL7/CDA TS or ISO → FHIR dateTime, keeping the source's precision: `'198908181126+0215' | fhir_datetime`
    → `1989-08-18T11:26:00+02:15`; `'2020' | fhir_datetime` → `2020`. No offset in the source → the mapping's zone
    (or `zone`)."""
    return _converted(env, value, zone, instant=False)


@pass_environment
def fhir_instant(env, value: object, zone: str | None = None) -> str | None:
    """Like `fhir_datetime`, but an instant needs a full time: a date without a time gives nothing."""
    return _converted(env, value, zone, instant=True)


@pass_environment
def fhir_date(env, value: object) -> str | None:
    """HL7/CDA TS or ISO → FHIR date (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`), dropping any time: `'19800101' | fhir_date`
    → `1980-01-01`."""
    if type(value) is not str:
        value = str(value or "")
    quick = _quick_date(value.strip())
    if quick is not None:
        return quick
    parts = _parts(value)
    if parts is None or not _checked_date(*parts[:3]):
        if str(value or "").strip():
            _warn(env, value, "date")
        return None
    return _date_text(*parts[:3])
