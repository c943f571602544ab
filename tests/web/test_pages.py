"""The plain pages of the foundation, served from the real database (PostgreSQL in CI)."""

import pytest
from django.conf import settings
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
