"""From the message log to the template line: a failed message's template.j2:N link opens the mapping's editor with
line N selected (the editor reads #L<n> in its address, as the snippet editor does)."""

from __future__ import annotations

from tests.api.test_message_log import BROKEN
from tests.ui.test_messages_page import logged  # noqa: F401 — the log with one failed $convert-data message


def test_the_template_line_link_opens_the_editor_at_that_line(open_browser, logged) -> None:  # noqa: F811
    browser = open_browser("ana")
    page = browser.page
    browser.open("/messages/?status=failed")
    page.locator("#messages tbody tr[data-status=failed] a.line").click()
    page.wait_for_url("**/mappings/adt-patient/#L2")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.evaluate("window.getSelection().toString()") == BROKEN.split("\n")[1]
