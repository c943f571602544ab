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
def test_it_lists_the_demo_mappings_on_the_home_page(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "json-patient" in page
    assert "csv-patients" in page


@pytest.mark.django_db
def test_it_serves_the_admin_login(client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "Django administration" in response.content.decode() or "FHIR Studio" in response.content.decode()
