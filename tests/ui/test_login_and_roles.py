"""Logging in, and what a viewer may do: read everything, change nothing."""

from __future__ import annotations

import pytest

from tests.ui.conftest import ARTIFACTS

pytestmark = pytest.mark.timeout(120)


def test_it_refuses_a_wrong_password_and_keeps_the_user_on_the_login_page(chromium, studio) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=studio["url"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/mappings/hl7v2-adt-a01/")
    assert "/login/" in page.url  # sent to log in first
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "enter a correct username and password" in page.inner_text(".error").lower()
    page.screenshot(path=str(_artifact("login-refused")))
    context.close()
    assert errors == []


def test_a_viewer_reads_the_editor_but_cannot_change_anything(open_browser) -> None:
    browser = open_browser("vic")
    page = browser.page
    browser.open("/mappings/hl7v2-adt-a01/", ready="body[data-preview-seq]")
    assert page.locator("#save").count() == 0 and page.locator("#publish-open").count() == 0
    before = page.inner_text(".template-pane .cm-content")
    page.click(".template-pane .cm-content")
    page.keyboard.type("typed by a viewer")
    assert page.inner_text(".template-pane .cm-content") == before
    assert page.evaluate("localStorage.length") == 0
    assert '"resourceType": "Bundle"' in page.inner_text(".output-pane .cm-content")
    page.click("#tests-tab-button")
    assert page.locator("#sample-new").count() == 0
    browser.open("/")
    assert page.locator("#new-mapping-open").count() == 0
    browser.screenshot("viewer-list")


def _artifact(name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
