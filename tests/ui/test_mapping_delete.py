"""Deleting a mapping from its versions page (it could be deleted only through the API): asked first, naming what
goes with it; refused, with the facades named, while a facade serves it; the editor's unsaved text kept in the
browser goes too; a viewer has no button."""

from __future__ import annotations

import pytest

from mappings.models import AuditEvent, Mapping
from tests.ui.test_facade_pages import confirm

pytestmark = pytest.mark.timeout(180)


def test_it_deletes_a_mapping_after_asking(open_browser, studio) -> None:
    versions = Mapping.objects.get(slug="json-patient").versions.count()
    browser = open_browser()
    page = browser.page
    browser.open("/mappings/json-patient/")  # unsaved text kept in this browser, as the editor does
    page.evaluate("localStorage.setItem('fhirstudio:draft:json-patient', '{}')")
    browser.open("/mappings/json-patient/history")

    page.click("#delete-mapping")
    asked = confirm(page, expect="Delete the mapping json-patient?", accept=False)
    assert ("its version," if versions == 1 else f"its {versions} versions,") in asked
    assert "its samples and their test runs" in asked
    assert "cannot be undone" in asked
    assert Mapping.objects.filter(slug="json-patient").exists()  # cancelled: nothing happened

    page.click("#delete-mapping")
    confirm(page, expect="Delete the mapping json-patient?")
    page.wait_for_url(f"{studio['url']}/")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.locator("#mapping-table tr[data-slug=json-patient]").count() == 0
    assert not Mapping.objects.filter(slug="json-patient").exists()
    event = AuditEvent.objects.get(action="mapping.deleted", mapping_slug="json-patient")
    assert event.actor == studio["author"] and event.before == {"versions": versions}
    assert page.evaluate("localStorage.getItem('fhirstudio:draft:json-patient')") is None


def test_it_refuses_to_delete_a_mapping_a_facade_serves_and_names_the_facades(open_browser) -> None:
    browser = open_browser()
    browser.allow_console_error("status of 409")
    page = browser.page
    browser.open("/mappings/hl7v2-adt-a01/history")
    page.click("#delete-mapping")
    confirm(page, expect="Delete the mapping hl7v2-adt-a01?")
    result = page.locator("#delete-result")
    result.wait_for()
    assert "Not deleted" in result.inner_text() and "demo/Patient" in result.inner_text()
    assert Mapping.objects.filter(slug="hl7v2-adt-a01").exists()
    assert not AuditEvent.objects.filter(action="mapping.deleted").exists()
    browser.screenshot("mapping-delete-refused")


def test_a_viewer_has_no_delete_button(open_browser) -> None:
    browser = open_browser("vic")
    browser.open("/mappings/json-patient/history")
    assert browser.page.locator("#delete-mapping").count() == 0
    assert browser.page.locator("#confirm-dialog").count() == 0
