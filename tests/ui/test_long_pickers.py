"""Pickers over long lists in Chromium: with more mappings or sources than one page of choices, the binding form
(facade page) and the new-batch form (Batches page) show a filter box that finds any of them on the server, say how
many are shown, keep a small list a plain select, and offer a batch only published mappings and stored sources."""

from __future__ import annotations

import pytest

from mappings import actions
from mappings.models import DataSource, Mapping

pytestmark = pytest.mark.timeout(180)
PAGE = 100  # lib/picker.js PICKER_PAGE_SIZE


def options(page, select: str) -> list[str]:
    return page.eval_on_selector_all(f"{select} option", "options => options.map((option) => option.value)")


def filter_of(page, select: str):
    return page.locator(f".picker-filter[aria-controls='{select.lstrip('#')}']")


def test_the_binding_form_finds_any_mapping_of_a_long_list(open_browser, studio) -> None:
    for number in range(PAGE):  # sorted before every demo mapping: the demo's are past the first page
        actions.do_create_mapping(
            acting_user=studio["author"], slug=f"bulk-{number:03}", title=f"Bulk {number}", source_format="json"
        )
    total = Mapping.objects.count()
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    shown = options(page, "#bind-mapping")
    assert len(shown) == PAGE and "hl7v2-vxu-v04" not in shown
    box = filter_of(page, "#bind-mapping")
    assert box.is_visible()
    assert page.locator("#bind-mapping-more").inner_text() == (f"{PAGE} of {total} shown: type to narrow")

    box.fill("VXU")  # any case, in the slug or the title
    page.wait_for_function("document.querySelector('#bind-mapping').options.length === 1")
    assert options(page, "#bind-mapping") == ["hl7v2-vxu-v04"]
    assert page.input_value("#bind-mapping") == "hl7v2-vxu-v04"
    box.fill("no such mapping")
    page.wait_for_function("document.querySelector('#bind-mapping').options[0].value === ''")
    assert page.locator("#bind-mapping option").inner_text() == "no mapping matches “no such mapping”"
    box.fill("")
    page.wait_for_function(f"document.querySelector('#bind-mapping').options.length === {PAGE}")
    assert box.is_visible()  # it stays, so a search can be cleared and typed again

    # a short list stays a plain select
    assert not filter_of(page, "#bind-source").is_visible()
    assert len(options(page, "#bind-source")) == DataSource.objects.count()


def test_the_batch_form_finds_stored_sources_and_offers_only_published_mappings(open_browser, studio) -> None:
    for number in range(PAGE + 1):
        actions.do_create_data_source(acting_user=studio["author"], name=f"feed-{number:03}", source_format="hl7v2")
    actions.do_create_mapping(
        acting_user=studio["author"], slug="unpublished", title="Unpublished", source_format="json"
    )
    browser = open_browser()
    page = browser.page
    browser.open("/batches/")
    page.click("#start-open")
    published = set(Mapping.objects.filter(latest_version__isnull=False).values_list("slug", flat=True))
    assert set(options(page, "#start-mapping")) == published and "unpublished" not in published
    assert not filter_of(page, "#start-mapping").is_visible()

    page.check("input[name=from][value=source]")
    assert len(options(page, "#start-source-select")) == PAGE
    box = filter_of(page, "#start-source-select")
    box.fill("adt-a01")
    page.wait_for_function("document.querySelector('#start-source-select').options.length === 1")
    assert options(page, "#start-source-select") == ["hl7v2-adt-a01-messages"]
    box.press("Enter")  # finds, never submits the form around it
    assert page.locator("#start-form").is_visible() and page.url.endswith("/batches/")
