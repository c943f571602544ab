"""The plain pages of the foundation, served from the real database (PostgreSQL in CI)."""

import html
import re

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection


@pytest.mark.django_db
def test_it_reports_health_with_the_database_vendor(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": connection.vendor}
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        assert response.json()["database"] == "postgresql"


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_the_login_page(client) -> None:
    response = client.get("/mappings/hl7v2-adt-a01/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/mappings/hl7v2-adt-a01/")


@pytest.mark.django_db
def test_it_serves_page_shells_with_their_script_and_config(client, django_user_model) -> None:
    from mappings.actions import do_create_mapping

    user = django_user_model.objects.create_superuser("ana", password="pw")
    do_create_mapping(acting_user=user, slug="feed", title="Lab feed", source_format="hl7v2", template="{}")
    client.force_login(user)
    editor = client.get("/mappings/feed/")
    assert editor.status_code == 200
    page = editor.content.decode()
    assert "build/editor.js" in page
    assert '"slug": "feed"' in page and '"canWrite": true' in page
    assert client.get("/mappings/missing/").status_code == 404
    for url, script in [("/", "mapping_list"), ("/mappings/feed/history", "history")]:
        response = client.get(url)
        assert response.status_code == 200
        assert f"build/{script}.js" in response.content.decode()


@pytest.mark.django_db
def test_it_serves_the_admin_login(client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "Django administration" in response.content.decode() or "FHIR Studio" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "first_read"),
    [
        ("/", "/api/mappings/?page_size=50"),
        ("/?search=lab&source_format=cobol&page=2", "/api/mappings/?search=lab&page_size=50&page=2"),
        ("/library/lookup-tables/?search=gender&page=3", "/api/lookup-tables/?page_size=25&search=gender&page=3"),
        ("/library/snippets/?page=1", "/api/snippets/?page_size=25&search="),
        ("/batches/?page=2", "/api/batches/?page_size=20&page=2"),
    ],
)
def test_a_list_page_preloads_the_page_its_address_names(client, django_user_model, address, first_read) -> None:
    """The list scripts ask first for config.listUrl, preloaded with the HTML: the filters the API accepts (an
    unknown source format is left out), the page size, and the page when past the first."""
    vic = django_user_model.objects.create_user("vic", password="pw")
    vic.groups.add(Group.objects.get_or_create(name="viewer")[0])  # a user in no group gets no page (403)
    client.force_login(vic)
    page = client.get(address).content.decode()
    links = re.findall(r'<link rel="preload" as="fetch" crossorigin href="([^"]+)"', page)
    preloads = [html.unescape(url) for url in links]
    assert preloads[0] == first_read, preloads
