"""The page's script and stylesheet as the build wrote them (static/build/manifest.json, by static/build.mjs).

A page asks for its script with the build's content hash (`build/editor.js?v=…`), so every file under build/ can be
cached for good (WHITENOISE_IMMUTABLE_FILE_TEST in the settings), and preloads every chunk the script imports
(`<link rel="modulepreload">`): the browser fetches them alongside the script instead of one import level at a time.
Without a manifest (the build has not run) the tags fall back to the plain names."""

from __future__ import annotations

import json
from pathlib import Path

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join

register = template.Library()

_manifest: dict = {"mtime": None, "entries": {}}


def manifest_path() -> Path:
    return Path(settings.STATICFILES_DIRS[0]) / "build" / "manifest.json"


def built(name: str) -> dict | None:
    """The manifest's entry for an output (`editor.js`, `fhirstudio.css`), read again when a build rewrote it."""
    path = manifest_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    if mtime != _manifest["mtime"]:
        _manifest["entries"] = json.loads(path.read_text())
        _manifest["mtime"] = mtime
    return _manifest["entries"].get(name)


def _versioned(entry: dict) -> str:
    return f"{static(entry['file'])}?v={entry['hash']}"


@register.simple_tag
def stylesheet(name: str = "fhirstudio.css") -> str:
    """A stylesheet of static/ as the build minified it (`{% stylesheet %}` is the shared one; a page's own sheet,
    static/facades.css say, goes in its template's head block as `{% stylesheet "facades.css" %}`)."""
    entry = built(name)
    href = _versioned(entry) if entry else static(name)
    return format_html('<link rel="stylesheet" href="{}">', href)


@register.simple_tag
def page_script(name: str, lazy: bool = False) -> str:
    """`<link rel="modulepreload">` for each chunk the page's script imports (and, with `lazy`, for what its
    `import()` calls load: a page that makes them at once), then the script."""
    entry = built(f"{name}.js")
    if entry is None:
        return format_html('<script type="module" src="{}"></script>', static(f"build/{name}.js"))
    chunks = ((static(chunk),) for chunk in [*entry["imports"], *(entry.get("lazy", []) if lazy else [])])
    preloads = format_html_join("", '<link rel="modulepreload" href="{}">\n  ', chunks)
    return format_html('{}<script type="module" src="{}"></script>', preloads, _versioned(entry))


@register.simple_tag
def data_preloads(urls: list[str] | None) -> str:
    """Start the page's first API reads with the HTML, not after its script has loaded: the page's own fetch() of
    the same URL (same-origin credentials, as lib/api.js sends) is answered from this preload."""
    return format_html_join(
        "", '<link rel="preload" as="fetch" crossorigin href="{}">\n  ', ((url,) for url in urls or [])
    )
