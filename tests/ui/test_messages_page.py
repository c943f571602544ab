"""The message log page in Chromium: an author searches the log by MSH-10 and by patient identifier, sees a failed
$convert-data message with its FS code and template line, reprocesses it after fixing the mapping and sees the
converted row linked to it; a viewer sees the same rows without a Reprocess button; a bad filter is explained."""

from __future__ import annotations

import json

import pytest
import requests

from mappings import actions, message_log
from mappings.models import ProcessedMessage
from tests.api.test_message_log import BROKEN, FIXED, adt


@pytest.fixture
def logged(studio, monkeypatch) -> dict:
    """`adt-patient` v1 (broken for PID-8 X) behind facade `clinic`, and three $convert-data calls, one failing."""
    message_log.discard()
    monkeypatch.setattr(message_log.buffer, "batch_seconds", 3600.0)  # written when the test flushes
    author = studio["author"]
    mapping = actions.do_create_mapping(
        acting_user=author, slug="adt-patient", title="ADT patient", source_format="hl7v2", template=BROKEN
    )
    actions.do_publish_version(mapping, acting_user=author, message="v1")
    actions.do_create_facade(
        acting_user=author, slug="clinic", title="Clinic", convert_templates={"ADT_A01": "adt-patient"}
    )
    for message in (adt("CTRL-1", "MRN-1"), adt("CTRL-2", "MRN-2", sex="X"), adt("CTRL-3", "MRN-2")):
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "inputData", "valueString": message},
                {"name": "rootTemplate", "valueString": "ADT_A01"},
            ],
        }
        answer = requests.post(
            f"{studio['url']}/fhir/clinic/$convert-data",
            data=json.dumps(body),
            headers={"Content-Type": "application/fhir+json"},
            timeout=20,
        )
        assert answer.status_code in (200, 422), answer.text
    assert message_log.flush() == 3
    yield {"mapping": mapping, "author": author}
    message_log.discard()


def test_an_author_finds_a_failed_message_and_reprocesses_it(open_browser, logged) -> None:
    browser = open_browser("ana")
    page = browser.page
    browser.open("/messages/")
    assert page.locator("#messages tbody tr").count() == 3
    page.fill("#filters [name=patient_identifier]", "MRN-2")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#messages tbody tr').length === 2")
    assert "patient_identifier=MRN-2" in page.url  # the search is kept in the address
    page.fill("#filters [name=patient_identifier]", "")
    page.fill("#filters [name=message_control_id]", "CTRL-2")
    page.click("#filters button[type=submit]")
    failed = page.locator("#messages tbody tr[data-status=failed]")
    page.wait_for_function("document.querySelectorAll('#messages tbody tr').length === 1")
    assert failed.get_attribute("data-code") == "FS-RND-001"
    assert "CTRL-2" in failed.inner_text() and "MRN-2" in failed.inner_text()
    line = failed.locator("a.line")
    assert (line.inner_text(), line.get_attribute("href")) == ("template.j2:2", "/mappings/adt-patient/#L2")
    failed.locator("button.show-outcome").click()
    outcome = page.locator("#messages tr.outcome-row pre.outcome")
    outcome.wait_for()
    assert '"code": "FS-RND-001"' in outcome.inner_text()
    browser.screenshot("messages-failed")

    actions.do_save_draft(logged["mapping"], acting_user=logged["author"], template=FIXED, expected_revision=None)
    actions.do_publish_version(logged["mapping"], acting_user=logged["author"], message="v2")
    failed.locator("button.reprocess").click()
    converted = page.locator("#messages tbody tr[data-status=converted]")
    converted.wait_for()
    original = ProcessedMessage.objects.get(message_control_id="CTRL-2", reprocessed_from=None)
    assert f"reprocessed #{original.pk}" in converted.inner_text() and "v2" in converted.inner_text()
    assert "converted as" in page.locator("#toast").inner_text()
    assert page.locator("#messages button.reprocess").count() == 0  # converted once: nothing left to run
    browser.screenshot("messages-reprocessed")


def test_a_viewer_reads_the_log_without_reprocess(open_browser, logged) -> None:
    browser = open_browser("vic")
    page = browser.page
    browser.open("/messages/?status=failed")
    assert page.locator("#messages tbody tr").count() == 1
    assert page.locator("#filters [name=status]").input_value() == "failed"
    assert page.locator("#messages button.reprocess").count() == 0
    browser.allow_console_error("400")
    page.fill("#filters [name=batch]", "not-a-number")
    page.click("#filters button[type=submit]")
    page.locator("#filters-error").wait_for()
    assert "batch" in page.locator("#filters-error").inner_text()
