"""/audit/: admins read the audit log in the browser — newest first, filtered by action and user (kept in the
address), paged, with links that download the same rows as FHIR AuditEvent resources; other roles get a 403."""

from __future__ import annotations

import json
import re

import pytest

from mappings.actions.common import audit
from mappings.models import AuditAction, AuditEvent
from tests.ui.conftest import make_user

pytestmark = pytest.mark.timeout(120)


def test_an_admin_filters_pages_and_downloads_the_audit_log(open_browser, studio) -> None:
    make_user("ada", "admin")
    for number in range(55):  # more than a page of one user's sign-ins
        audit(studio["viewer"], AuditAction.LOGIN, studio["viewer"], address=f"10.0.0.{number}")
    browser = open_browser("ada")  # signing in writes its own auth.login row
    page = browser.page
    browser.open("/audit/")
    newest = AuditEvent.objects.order_by("-created_at", "-id").first()
    first_row = page.locator("#audit tbody tr").first
    assert (
        first_row.get_attribute("data-id") == str(newest.pk) and first_row.get_attribute("data-action") == "auth.login"
    )
    assert "ada" in first_row.inner_text()
    page.select_option("select[name=action]", "auth.login")
    page.fill("input[name=actor]", "vic")
    page.wait_for_url(re.compile(r".*action=auth\.login.*actor=vic"))
    page.wait_for_selector("#pages-place:has-text('1–50 of 55')")
    assert page.locator("#audit tbody tr").count() == 50
    assert all(text == "vic" for text in page.locator("#audit tbody tr td:nth-child(2)").all_inner_texts())
    page.click("#pages-next")
    page.wait_for_selector("#pages-place:has-text('51–55 of 55')")
    assert "page=2" in page.url
    href = page.get_attribute("#download-ndjson", "href")
    assert href == "/api/audit/fhir?action=auth.login&actor=vic&_format=ndjson"
    download = page.request.get(href)
    lines = download.text().splitlines()
    assert download.headers["content-type"] == "application/fhir+ndjson" and len(lines) == 55
    event = json.loads(lines[0])
    assert event["resourceType"] == "AuditEvent" and event["agent"][0]["who"]["identifier"]["value"] == "vic"
    bundle = page.request.get(page.get_attribute("#download-bundle", "href")).json()
    assert bundle["type"] == "collection" and len(bundle["entry"]) == 55
    page.reload()  # the filters and the page come back from the address
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_selector("#pages-place:has-text('51–55 of 55')")
    assert page.input_value("input[name=actor]") == "vic"
    page.fill("input[name=since]", "2999-01-01T00:00:00")
    page.wait_for_selector("#audit tbody td.hint:has-text('Nothing matches.')")
    browser.screenshot("audit-log")


def test_the_audit_page_is_for_admins_only(open_browser, studio) -> None:
    browser = open_browser("ana")  # an author
    browser.allow_console_error("403")
    response = browser.page.goto("/audit/")
    assert response.status == 403
