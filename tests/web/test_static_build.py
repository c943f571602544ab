"""What a page costs to load, decided by the build (static/build.mjs) and how the studio serves it: minified, split
scripts listed in static/build/manifest.json; every chunk a page script imports preloaded with the page; files sent
compressed and cached for good (their names or `?v=` change with their content); no parsers the editors never use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

BUILD = Path(settings.STATICFILES_DIRS[0]) / "build"


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = BUILD / "manifest.json"
    if not path.exists():
        pytest.fail("static/build/manifest.json is missing: run `npm run build` (scripts/test does)")
    return json.loads(path.read_text())


@pytest.fixture
def signed_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ana", password="pw"))
    return client


@pytest.mark.django_db
def test_it_preloads_every_chunk_a_page_script_imports(signed_in, manifest) -> None:
    page = signed_in.get("/").content.decode()
    entry = manifest["mapping_list.js"]
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', page)
    assert sorted(preloaded) == entry["imports"]
    assert f'<script type="module" src="/static/build/mapping_list.js?v={entry["hash"]}"></script>' in page
    assert f'href="/static/build/fhirstudio.css?v={manifest["fhirstudio.css"]["hash"]}"' in page


@pytest.mark.django_db
def test_it_serves_the_build_compressed_and_cacheable_for_good(client, manifest) -> None:
    entry = manifest["editor.js"]
    for name in [entry["file"], *entry["imports"], manifest["fhirstudio.css"]["file"]]:
        response = client.get(f"/static/{name}", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
        assert response.status_code == 200, name
        assert response["Content-Encoding"] == "br", name
        assert "immutable" in response["Cache-Control"], name
        response.close()


def test_it_minifies_the_scripts(manifest) -> None:
    """No line indented as source lines are, and few lines for the size: the line breaks left are those inside
    template literals (the snippet list's starter text has four in 2.5 KB)."""
    for path in BUILD.glob("*.js"):
        text = path.read_text()
        code = [line for line in text.splitlines() if line and not line.startswith("//")]
        indented = [line[:60] for line in code if re.match(r"\s{2,}\S", line)]
        assert not indented, f"{path.name} does not look minified: {indented[:3]}"
        assert len(code) <= 3 or len(text) / len(code) > 300, f"{path.name} does not look minified"


def test_it_leaves_out_the_parsers_no_editor_uses(manifest) -> None:
    """lang-jinja's default base is HTML (with JavaScript and CSS, ~150 KiB); every studio editor names its own base
    (`jinja({ base: json() })`), so the build replaces lang-html with a stub."""
    for path in BUILD.glob("*.js"):
        text = path.read_text()
        for language in ("javascript", "css", "html"):
            assert f'name:"{language}"' not in text, f"{path.name} bundles the {language} language"


def test_it_links_any_stylesheet_of_static_as_built(manifest) -> None:
    from django.template import Context, Template

    def link(name: str) -> str:
        return Template(f'{{% load page_assets %}}{{% stylesheet "{name}" %}}').render(Context())

    entry = manifest["fhirstudio.css"]
    assert link("fhirstudio.css") == f'<link rel="stylesheet" href="/static/{entry["file"]}?v={entry["hash"]}">'
    assert link("not-built.css") == '<link rel="stylesheet" href="/static/not-built.css">'  # before a build
