"""The connections page in Chromium: an admin adds a connection to the studio's own demo facade, tests it and sees
the server's FHIR version; a connection missing its secret is explained, not added; SMART Backend Services fields
follow the sign-in mode; a viewer sees the list without the form or Test buttons; an author pushes a render to a FHIR
store of the studio's own and sees each entry's answer."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mappings.actions.connections import do_create_connection
from mappings.models import AuditEvent, Connection
from tests.api.conftest import ROOT
from tests.store.conftest import make_store_facade
from tests.ui.conftest import make_user

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def admin_page(open_browser, studio, settings):
    make_user("ada", "admin")
    base = studio["url"].replace("://localhost:", "://127.0.0.1:")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    browser = open_browser("ada")
    browser.open("/connections/")
    return {"browser": browser, "base": base}


def test_an_admin_adds_a_connection_and_tests_it(admin_page) -> None:
    browser = admin_page["browser"]
    page = browser.page
    assert "No connections yet." in page.inner_text("#connections")
    page.fill("#add-form [name=name]", "demo")
    page.fill("#add-form [name=base_url]", f"{admin_page['base']}/fhir/demo")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#connections tr[data-name=demo]")
    assert "not tested" in page.inner_text("#connections tr[data-name=demo]")
    page.click("#connections tr[data-name=demo] button.test")
    page.wait_for_selector("#connections tr[data-name=demo][data-code=ok]")
    tested = page.inner_text("#connections tr[data-name=demo]")
    assert "FHIR 4.0.1" in tested and "ok" in tested
    browser.screenshot("connections-tested")
    assert Connection.objects.get(name="demo").check_code == "ok"
    assert AuditEvent.objects.filter(action="connection.tested", actor__username="ada").count() == 1


def test_an_admin_is_told_what_a_connection_lacks_and_sees_only_its_modes_fields(admin_page) -> None:
    browser = admin_page["browser"]
    browser.allow_console_error("400")
    page = browser.page
    assert page.is_hidden("#add-form [name=private_key]")
    page.select_option("#add-form [name=auth_mode]", "smart-backend")
    assert page.is_visible("#add-form [name=private_key]") and page.is_hidden("#add-form [name=token]")
    page.select_option("#add-form [name=auth_mode]", "bearer")
    page.fill("#add-form [name=name]", "hub")
    page.fill("#add-form [name=base_url]", "https://fhir.example.org/r4")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#add-error:not([hidden])")
    assert "needs token" in page.inner_text("#add-error")
    page.fill("#add-form [name=token]", "tok-page-1")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#connections tr[data-name=hub]")
    assert "token set" in page.inner_text("#connections tr[data-name=hub]")
    assert page.input_value("#add-form [name=token]") == ""  # not kept in the page
    assert "tok-page-1" not in page.content()


def test_a_viewer_sees_connections_without_the_form_or_test_buttons(open_browser, studio) -> None:
    do_create_connection(acting_user=None, name="hub", base_url="https://fhir.example.org/r4")
    browser = open_browser("vic")
    browser.open("/connections/")
    page = browser.page
    assert page.locator("#connections tr[data-name=hub]").count() == 1
    assert page.locator("#add-form").count() == 0 and page.locator("button.test").count() == 0


def test_an_author_pushes_a_render_to_a_store_and_sees_each_entry(open_browser, studio, settings) -> None:
    base = studio["url"].replace("://localhost:", "://127.0.0.1:")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    make_store_facade(slug="shop", store="shop-data")
    do_create_connection(acting_user=None, name="store", base_url=f"{base}/fhir/shop")
    browser = open_browser("ana")
    browser.open("/connections/")
    page = browser.page
    assert page.locator("#add-form").count() == 0  # authors push; admins add
    page.fill("#push-form [name=mapping]", "json-patient")
    page.fill("#push-form [name=payload]", (ROOT / "examples/json-patient/samples/example-patient.json").read_text())
    page.click("#push-form button[type=submit]")
    page.wait_for_selector("#push-result[data-code=ok]")
    assert page.locator("#push-result tbody tr[data-status='201']").count() == 1
    assert "Patient/" in page.inner_text("#push-result")
    browser.screenshot("connections-pushed")
    browser.allow_console_error("400")
    page.fill("#push-form [name=payload]", "not json")
    page.click("#push-form button[type=submit]")
    page.wait_for_selector("#push-error:not([hidden])")
    assert "nothing was sent" in page.inner_text("#push-error")
