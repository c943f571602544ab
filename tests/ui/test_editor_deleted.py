"""A mapping deleted under an open editor: the page says so plainly, stops calling the output valid, and saves the
text as a new mapping (with the samples it still holds) on request."""

from __future__ import annotations

import pytest

from mappings import actions
from mappings.models import Mapping

CSV = "/mappings/csv-patients/"
pytestmark = pytest.mark.timeout(180)


def test_it_says_the_mapping_was_deleted_and_saves_the_text_as_a_new_one(open_browser, studio) -> None:
    browser = open_browser()
    browser.allow_console_error("status of 404")
    page = browser.page
    browser.open(CSV, ready="body[data-preview-seq]")
    samples = sorted(Mapping.objects.get(slug="csv-patients").samples.values_list("name", flat=True))
    assert samples

    actions.do_delete_mapping(Mapping.objects.get(slug="csv-patients"), acting_user=studio["author"])
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("\n{# kept #}")

    banner = page.locator("#banner.bad")
    banner.wait_for()
    assert "no longer exists" in banner.inner_text()
    assert banner.evaluate("element => getComputedStyle(element).fontWeight") in ("600", "700")
    problems = page.inner_text("#problems")
    assert "valid FHIR" not in problems and "deleted" in problems
    assert page.inner_text("#save-state") == "deleted"
    assert page.is_disabled("#publish-open")
    browser.screenshot("editor-mapping-deleted")

    page.keyboard.press("Control+s")  # saving now means saving as a new mapping
    dialog = page.locator("#save-as-dialog[open]")
    dialog.wait_for()
    assert page.input_value("#save-as-form input[name=title]").endswith("(restored)")
    page.fill("#save-as-form input[name=title]", "CSV patients again")
    assert page.input_value("#save-as-form input[name=slug]") == "csv-patients-again"  # the title fills the slug
    page.click("#save-as-save")
    page.wait_for_url("**/mappings/csv-patients-again/")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert "{# kept #}" in page.evaluate("window.fhirStudio.templateText()")

    copy = Mapping.objects.select_related("draft").get(slug="csv-patients-again")
    assert copy.draft.template.endswith("{# kept #}")
    assert copy.source_format == "csv"
    assert sorted(copy.samples.values_list("name", flat=True)) == samples
    assert page.locator("#banner.bad").count() == 0


def test_it_names_the_rule_when_the_new_slug_is_taken(open_browser, studio) -> None:
    browser = open_browser()
    browser.allow_console_error("status of 404")
    browser.allow_console_error("status of 409")
    page = browser.page
    browser.open(CSV, ready="body[data-preview-seq]")
    actions.do_delete_mapping(Mapping.objects.get(slug="csv-patients"), acting_user=studio["author"])
    page.click("#tests-tab-button")
    page.click("#run-tests")  # running the samples finds out too
    page.locator("#banner.bad button").click()
    page.fill("#save-as-form input[name=slug]", "json-patient")  # another demo mapping's
    page.click("#save-as-save")
    error = page.locator("#save-as-slug-error")
    error.wait_for()
    assert "json-patient" in error.inner_text() or "exists" in error.inner_text()
    assert page.get_attribute("#save-as-form input[name=slug]", "aria-invalid") == "true"
    assert "Lower-case letters" in page.get_attribute("#save-as-form input[name=slug]", "title")
