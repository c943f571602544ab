"""A store facade: a facade serving every R4 type from an empty FHIR store (data source kind `fhir-store`), made
through the studio's actions as the demo's `demo-store` is.

- `store` (db): the facade `store` over the store `store-data`, for the Django test client; `store["base"]` is
  "/fhir/store".
- `live_store` (transactional_db, live_server): the same on a live server; `live_store["base"]` is the absolute URL,
  for FHIR clients (fhirclient, fhirpy, the connector)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from mappings import caches
from mappings.actions.store_facades import do_create_store_facade
from tests.api.conftest import api, json_patient, users  # noqa: F401 — the studio API's fixtures, shared
from tests.facade.conftest import served  # noqa: F401 — a facade over a stored source (no store)


def make_store_facade(slug: str = "store", store: str = "store-data", **options) -> dict:
    """A store facade made through the actions (an admin acting), with every R4 type unless `resource_types`."""
    caches.clear()
    admin = User.objects.filter(username="store-admin").first() or User.objects.create_superuser(
        "store-admin", password="pw-store-admin"
    )
    facade = do_create_store_facade(acting_user=admin, slug=slug, title=f"{slug} (FHIR store)", store=store, **options)
    return {"facade": facade, "admin": admin, "slug": slug, "base": f"/fhir/{slug}"}


@pytest.fixture
def store(db) -> dict:
    return make_store_facade()


@pytest.fixture
def live_store(transactional_db, live_server) -> dict:
    made = make_store_facade()
    return {**made, "base": f"{live_server.url}/fhir/{made['slug']}"}
