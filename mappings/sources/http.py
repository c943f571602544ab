"""HTTP data sources: URL templates for read and search against a legacy REST API, with headers, basic or bearer
auth, a timeout and retries with backoff. Only hosts the administrator allowed (FHIR_STUDIO_SOURCE_ALLOWED_HOSTS) can
be reached, at public addresses or listed ones only (mappings/outbound.py), redirects are not followed, and parameters
are URL-encoded into the template: no SSRF through a config or a search value.
Credentials (auth.token, auth.password, secret headers) are stored encrypted and decrypted just before the call
(mappings/secrets.py).

`list_path` (optional) lists every record page by page for a bulk `$export`: `{page}` (from `first_page`, default 1),
`{offset}` or `{after}` (the `key_field` of the previous page's last record, empty on the first page), with an optional
`{limit}`; an empty page ends the list."""

from __future__ import annotations

import json
import time
from string import Formatter
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

from mappings import secrets
from mappings.outbound import OutboundRefusedError, check_outbound_url, pinned_session
from mappings.sources import SourceError

RETRY_STATUSES = {502, 503, 504}
LIST_CURSORS = ("page", "offset", "after")  # what list_path pages by: exactly one of them
LIST_NAMES = {*LIST_CURSORS, "limit"}


def _url(config: dict, template_key: str, values: dict[str, str]) -> str:
    template = config.get(template_key)
    if not isinstance(template, str) or not template.startswith("/"):
        raise SourceError(f"The source has no {template_key} (a path starting with /).", status=500)
    names = {name for _, name, _, _ in Formatter().parse(template) if name}
    missing = names - set(values)
    if missing:
        raise SourceError(f"{template_key} needs {', '.join(sorted(missing))}.", status=400)
    path = template.format(**{name: quote(str(values[name]), safe="") for name in names})
    return str(config.get("base_url", "")).rstrip("/") + path


def fetch(config: dict, template_key: str, values: dict[str, str]) -> list[str]:
    """The payloads the legacy API answers: a JSON array gives one record per item (or the array under
    `records_key`), any other body is one record."""
    body = _get(config, _url(config, template_key, values))
    return [] if body is None else _records(body, config.get("records_key"))


def _get(config: dict, url: str) -> str | None:
    """The body the API answers at `url`; None for a 404."""
    try:
        # the allow-list, and the address the name resolves to (mappings/outbound.py); the call goes to that address
        address = check_outbound_url(url, settings.FHIR_STUDIO["SOURCE_ALLOWED_HOSTS"])
    except OutboundRefusedError as exc:
        where = urlsplit(url).netloc or url
        raise SourceError(f"{where} is not an allowed host for data sources: {exc}", status=500) from exc
    try:
        config = secrets.opened(config)  # the credentials, decrypted only here, for this call
    except secrets.SecretsKeyError as exc:
        raise SourceError(str(exc), status=503) from exc
    headers = {str(key): str(value) for key, value in (config.get("headers") or {}).items()}
    auth = config.get("auth") or {}
    if auth.get("type") == "bearer":
        headers["Authorization"] = f"Bearer {auth.get('token', '')}"
    basic = (auth.get("username", ""), auth.get("password", "")) if auth.get("type") == "basic" else None
    timeout = float(config.get("timeout_s", 5))
    retries = max(0, min(int(config.get("retries", 2)), 5))
    with pinned_session(address) as session:
        for attempt in range(retries + 1):
            try:
                response = session.get(url, headers=headers, auth=basic, timeout=timeout, allow_redirects=False)
            except requests.RequestException as exc:
                if attempt == retries:
                    raise SourceError(f"The legacy API did not answer: {type(exc).__name__}.", status=504) from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt == retries:
                    break
            time.sleep(0.1 * 2**attempt)  # backoff: 0.1 s, 0.2 s, 0.4 s…
    if response.status_code == 404:
        return None
    if response.status_code >= 300:
        raise SourceError(f"The legacy API answered {response.status_code}.")
    return response.text


def _records(body: str, records_key: str | None) -> list[str]:
    try:
        data = json.loads(body)
    except ValueError:
        return [body]  # XML, HL7 or text: one record
    if records_key and isinstance(data, dict):
        data = data.get(records_key, [])
    if isinstance(data, list):
        return [json.dumps(item) for item in data]
    return [json.dumps(data)]


def list_problems(config: dict) -> list[str]:
    """What is wrong with the list settings (none when there is no list_path): checked when the source is saved, so
    an export does not find out half-way."""
    path = config.get("list_path")
    if path is None:
        return []
    # Only a path: joined to base_url, so it cannot name another host (fetches check the allow-list as well).
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return ["list_path must be a path starting with a single /, like /patients?page={page}&size={limit}."]
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(path) if name is not None]
    except ValueError as exc:
        return [f"list_path is not a valid template: {exc}."]
    names = {name for name, _, _ in fields}
    problems = []
    if any(spec or conversion for _, spec, conversion in fields) or not names <= LIST_NAMES:
        problems.append("list_path can only use {page}, {offset} or {after}, and {limit} (no formats).")
    cursors = [name for name in LIST_CURSORS if name in names]
    if len(cursors) != 1:
        problems.append("list_path needs exactly one of {page}, {offset} or {after}.")
    if "after" in cursors and not (isinstance(config.get("key_field"), str) and config["key_field"]):
        problems.append("A list_path with {after} needs key_field: the record field the next page starts after.")
    first_page = config.get("first_page", 1)
    if isinstance(first_page, bool) or not isinstance(first_page, int) or first_page < 0:
        problems.append("first_page must be a whole number, 0 or more.")
    return problems


def list_mode(config: dict) -> str | None:
    """What list_path pages by ("page", "offset" or "after"); None without a usable list_path."""
    path = config.get("list_path")
    if not isinstance(path, str):
        return None
    names = {name for _, name, _, _ in Formatter().parse(path) if name}
    cursors = [name for name in LIST_CURSORS if name in names]
    return cursors[0] if len(cursors) == 1 else None


def start_cursor(config: dict) -> dict:
    mode = list_mode(config)
    if mode == "page":
        return {"page": int(config.get("first_page", 1))}
    return {"offset": 0} if mode == "offset" else {"after": None}


def list_page(config: dict, cursor: dict) -> tuple[list[str], dict | None]:
    """One page of the list at `cursor` ({page|offset|after, limit}): its payloads and the cursor of the next page,
    None once a page is empty. A 404 is an empty page (APIs that answer it past the last page)."""
    mode = list_mode(config)
    if mode is None:
        raise SourceError("The source has no list_path with {page}, {offset} or {after}.", status=500)
    values = {"limit": cursor.get("limit", ""), mode: "" if cursor.get(mode) is None else cursor[mode]}
    body = _get(config, _url(config, "list_path", values))
    items = [] if body is None else _page_items(body, config.get("records_key"))
    if not items:
        return [], None
    if mode == "page":
        following = cursor["page"] + 1
    elif mode == "offset":
        following = cursor["offset"] + len(items)  # not + limit: an API may cap its pages below what was asked
    else:
        following = _key(items[-1], config["key_field"])
    return [json.dumps(item) for item in items], {**cursor, mode: following}


def _page_items(body: str, records_key: str | None) -> list:
    """The records of a list page. Anything but a JSON array (or one under records_key) is refused: taken as one
    record, it would never be the empty page that ends the list."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if records_key and isinstance(data, dict) and records_key in data:
        data = data[records_key] or []  # null on the last page: an empty one
    if not isinstance(data, list):  # a misspelt records_key too: it would look like the end of the list
        where = f"an array under '{records_key}'" if records_key else "a JSON array (or set records_key)"
        raise SourceError(f"A list_path page must be {where}.", status=502)
    return data


def _key(item: object, key_field: str) -> str | int | float:
    value = item.get(key_field) if isinstance(item, dict) else None
    if value is None or isinstance(value, bool | dict | list):
        raise SourceError(f"A listed record has no {key_field} (key_field) to continue the list after.", status=502)
    return value
