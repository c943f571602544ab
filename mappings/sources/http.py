"""HTTP data sources: URL templates for read and search against a legacy REST API, with headers, basic or bearer
auth, a timeout and retries with backoff. Only hosts the administrator allowed (FHIR_STUDIO_SOURCE_ALLOWED_HOSTS) can
be reached, redirects are not followed, and parameters are URL-encoded into the template: no SSRF through a config
or a search value."""

from __future__ import annotations

import json
import time
from string import Formatter
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

from mappings.sources import SourceError

RETRY_STATUSES = {502, 503, 504}


def allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    hosts = settings.FHIR_STUDIO["SOURCE_ALLOWED_HOSTS"]
    host = parts.hostname.lower()
    return host in hosts or f"{host}:{parts.port}" in hosts


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
    url = _url(config, template_key, values)
    if not allowed(url):
        raise SourceError(f"{urlsplit(url).netloc or url} is not an allowed host for data sources.", status=500)
    headers = {str(key): str(value) for key, value in (config.get("headers") or {}).items()}
    auth = config.get("auth") or {}
    if auth.get("type") == "bearer":
        headers["Authorization"] = f"Bearer {auth.get('token', '')}"
    basic = (auth.get("username", ""), auth.get("password", "")) if auth.get("type") == "basic" else None
    timeout = float(config.get("timeout_s", 5))
    retries = max(0, min(int(config.get("retries", 2)), 5))
    for attempt in range(retries + 1):
        try:
            response = requests.get(url, headers=headers, auth=basic, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            if attempt == retries:
                raise SourceError(f"The legacy API did not answer: {type(exc).__name__}.", status=504) from exc
        else:
            if response.status_code not in RETRY_STATUSES or attempt == retries:
                break
        time.sleep(0.1 * 2**attempt)  # backoff: 0.1 s, 0.2 s, 0.4 s…
    if response.status_code == 404:
        return []
    if response.status_code >= 300:
        raise SourceError(f"The legacy API answered {response.status_code}.")
    return _records(response.text, config.get("records_key"))


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
