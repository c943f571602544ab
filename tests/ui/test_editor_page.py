"""The mapping editor in Chromium, as an analyst uses it: edit the ADT demo, watch the preview and the errors follow,
add a tested sample, publish, compare and restore versions, and survive a concurrent save."""

from __future__ import annotations

import json
import statistics

import pytest

from mappings.models import Mapping

ADT = "/mappings/hl7v2-adt-a01/"
pytestmark = pytest.mark.timeout(180)


def replace_all(page, find: str, replacement: str) -> None:
    """CodeMirror's own search-and-replace panel (Ctrl-F), as a user would change a line."""
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+f")
    page.fill(".template-pane input[name=search]", find)
    page.fill(".template-pane input[name=replace]", replacement)
    page.click(".template-pane button[name=replaceAll]")
    page.keyboard.press("Escape")


def wait_for_preview_after(page, seq: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.previewSeq || 0) > {seq}")


def preview_seq(page) -> int:
    return int(page.evaluate("document.body.dataset.previewSeq || 0"))


def cursor_inside(page, text: str) -> None:
    """Find `text` with CodeMirror's search panel and put the cursor before its last character (a closing quote)."""
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+f")
    page.fill(".template-pane input[name=search]", text)
    page.keyboard.press("End")  # a key up: the panel takes the new query (fill alone is not enough)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")  # from the selected match to its end
    page.keyboard.press("ArrowLeft")


def draft_text() -> str:
    return Mapping.objects.select_related("draft").get(slug="hl7v2-adt-a01").draft.template


def test_it_previews_edits_and_underlines_errors_at_their_line(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    assert '"resourceType": "Bundle"' in page.inner_text(".output-pane .cm-content")
    browser.screenshot("editor-adt")

    seq = preview_seq(page)
    replace_all(page, '"type": "transaction"', '"type": "batch"')
    wait_for_preview_after(page, seq)
    assert '"type": "batch"' in page.inner_text(".output-pane .cm-content")
    assert page.inner_text("#save-state") == "unsaved changes"

    seq = preview_seq(page)
    replace_all(page, '"type": "batch"', '"type": {{ msg.PID | no_such_filter }}')
    wait_for_preview_after(page, seq)
    underlined = page.locator(".template-pane .cm-line", has=page.locator(".cm-lintRange-error"))
    underlined.first.wait_for()
    assert "no_such_filter" in underlined.first.inner_text()
    problem = page.locator("#problems .problem.error").first
    assert "template.j2:19" in problem.inner_text()
    assert "no_such_filter" in problem.inner_text()
    browser.screenshot("editor-template-error")

    page.click(".output-pane .cm-content")  # move the cursor away, then let the problem jump back to line 19
    problem.locator("button").click()
    line = page.evaluate("document.querySelector('.template-pane .cm-activeLine')?.textContent")
    assert "no_such_filter" in line


def test_it_underlines_invalid_fhir_in_the_output_and_the_template(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    seq = preview_seq(page)
    replace_all(page, '"type": "transaction"', '"type": "bogus"')
    wait_for_preview_after(page, seq)
    problem = page.locator("#problems .problem.error", has_text="Bundle.type").first
    problem.wait_for()
    output_line = page.locator(".output-pane .cm-line", has=page.locator(".cm-lintRange-error")).first
    assert '"type": "bogus"' in output_line.inner_text()
    template_line = page.locator(".template-pane .cm-line", has=page.locator(".cm-lintRange-error")).first
    assert '"type": "bogus"' in template_line.inner_text()
    browser.screenshot("editor-validation-error")


def test_it_keeps_unsaved_text_across_a_reload(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    replace_all(page, '"type": "transaction"', '"type": "batch"')
    page.wait_for_function("localStorage.getItem('fhirstudio:draft:hl7v2-adt-a01') !== null")
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert "were restored from this browser" in page.inner_text("#banner")
    assert '"type": "batch"' in page.inner_text(".template-pane .cm-content")
    assert '"type": "transaction"' in draft_text()  # nothing was saved behind the user's back


def test_it_saves_adds_a_tested_sample_publishes_compares_and_restores(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    replace_all(page, '"type": "transaction"', '"type": "batch"')
    page.keyboard.press("Control+s")
    page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")
    assert '"type": "batch"' in draft_text()
    page.wait_for_selector("#test-state.bad")  # the demo samples' golden outputs still say "transaction"

    page.click("#tests-tab-button")
    page.click("#sample-new")
    page.fill("#sample-form input[name=name]", "batch-type")
    page.fill("#sample-form textarea[name=assertions]", "Bundle.type = 'batch'\nBundle.entry.count() > 3")
    page.click("#sample-save")
    row = page.locator("#cases tr[data-case=batch-type]")
    row.locator(".badge.ok").wait_for()
    assert "passed" in row.inner_text()
    assert "1 passed, 4 failed" in page.inner_text("#run-summary")
    golden = page.locator("#cases tr[data-case=adt-a01-full]")
    assert "failed" in golden.inner_text() and "batch" in golden.locator("pre.diff").inner_text()
    browser.screenshot("editor-samples")

    # The publish dialog shows the draft's test result and asks before publishing a draft that fails its samples.
    page.click("#publish-open")
    tests = page.locator("#publish-tests.bad")
    tests.wait_for()
    assert "1 passed, 4 failed" in tests.inner_text()
    assert "adt-a01-full" in tests.inner_text() and "batch-type" not in tests.inner_text()
    page.fill("#publish-form textarea[name=message]", "Send as a batch")
    page.click("#publish")
    ask = page.locator("#ask-dialog[open]")
    ask.wait_for()
    assert "fails 4 of 5 samples" in ask.inner_text() and "adt-a01-full" in ask.inner_text()
    browser.screenshot("editor-publish-failing")
    page.click("#ask-no")
    assert page.locator("#publish-dialog[open]").count() == 1
    assert Mapping.objects.get(slug="hl7v2-adt-a01").versions.count() == 1  # not published
    page.click("#publish")
    page.click("#ask-yes")
    page.wait_for_selector("#banner:has-text('Published version 2')")

    browser.open(f"{ADT}history")
    assert "Send as a batch" in page.inner_text("#versions")
    page.select_option("#compare-from", "1")
    page.select_option("#compare-to", "2")
    page.wait_for_function("document.querySelector('#label-to').textContent.startsWith('v2')")
    changed = page.locator("#diff .cm-changedLine")
    changed.first.wait_for()
    assert any('"batch"' in text for text in changed.all_inner_texts())
    page.click("#impact")
    page.wait_for_selector("#impact-table")
    assert "changes" in page.inner_text("#impact-table tr[data-case=adt-a01-full]")
    browser.screenshot("history-diff")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#versions li[data-number='1'] button.restore")
    page.wait_for_selector("#compare-summary:has-text('v1 is now the draft')")
    assert '"type": "transaction"' in draft_text()


def test_it_resolves_a_concurrent_save_without_losing_text(open_browser, studio) -> None:
    from tests.ui.conftest import make_user

    make_user("bob", "author")
    ana = open_browser("ana")
    bob = open_browser("bob")
    ana.open(ADT, ready="body[data-preview-seq]")
    bob.open(ADT, ready="body[data-preview-seq]")

    replace_all(bob.page, '"type": "transaction"', '"type": "batch"')
    bob.page.keyboard.press("Control+s")
    bob.page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")

    ana.allow_console_error("status of 412")
    replace_all(ana.page, '"resourceType": "Bundle",', '"resourceType": "Bundle", "id": "ana",')
    ana.page.keyboard.press("Control+s")
    dialog = ana.page.locator("#conflict-dialog")
    dialog.wait_for()
    assert "bob saved revision" in dialog.inner_text()
    merge = dialog.locator(".cm-mergeView")
    assert '"type": "batch"' in merge.locator(".cm-merge-a").inner_text()  # theirs
    assert '"id": "ana"' in merge.locator(".cm-merge-b").inner_text()  # mine, nothing lost
    ana.screenshot("editor-conflict")
    ana.page.click("#conflict-keep-mine")
    ana.page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")
    assert '"id": "ana"' in draft_text()


def test_it_measures_keystroke_to_preview_latency(open_browser) -> None:
    """Recorded, not asserted: the figures go to test-artifacts/ui/preview-latency.json and bench/README.md."""
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    replace_all(page, '"type": "transaction"', '"type": "transaction", "id": "x"')
    page.wait_for_timeout(400)
    cursor_inside(page, '"id": "x"')

    def type_and_measure(keys: int) -> tuple[list[float], list[float]]:
        page.evaluate(
            "window.fhirStudio.latencies.length = 0; window.fhirStudio.clientMs.length = 0;"
            " performance.clearResourceTimings()"
        )
        for index in range(keys):
            seq = preview_seq(page)
            page.keyboard.type("abcdefghij"[index % 10])
            wait_for_preview_after(page, seq)
            page.wait_for_timeout(50)
        latencies = page.evaluate("window.fhirStudio.latencies")
        requests_ms = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.endsWith('/render')).map(e => e.duration)"
        )
        assert len(latencies) >= keys
        return latencies, requests_ms, page.evaluate("window.fhirStudio.clientMs")

    def summary(latencies: list[float], requests_ms: list[float], client_ms: list[float]) -> dict:
        return {
            "keystrokes": len(latencies),
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(statistics.quantiles(latencies, n=20, method="inclusive")[18], 1),
            "max_ms": round(max(latencies), 1),
            "render_request_p50_ms": round(statistics.median(requests_ms), 1),  # keystroke and locating renders
            "response_to_frame_p50_ms": round(statistics.median(client_ms), 1),
            "server_timings_ms": page.evaluate("window.fhirStudio.lastResult.timings"),
        }

    valid = summary(*type_and_measure(30))  # inside the Bundle id: every preview is a valid Bundle
    assert page.evaluate("window.fhirStudio.lastResult.output.id") == "x" + "abcdefghij" * 3
    # Inside the Bundle type: each key makes a new validation error (the value is in its message), which a second
    # render locates at its template line at once.
    cursor_inside(page, '"transaction"')
    invalid = summary(*type_and_measure(15))
    assert page.evaluate("window.fhirStudio.lastResult.output.type") == "transaction" + "abcdefghij" + "abcde"
    page.keyboard.press("End")  # past the line's comma: each key now breaks the JSON, traced to the template line
    broken = summary(*type_and_measure(15))
    assert page.locator("#problems .problem.error").first.inner_text().count("FS-PST") == 1
    figures = {
        "scheduling": page.evaluate("window.fhirStudio.scheduling"),
        "valid_json": valid,
        "invalid_fhir": invalid,
        "broken_json": broken,
    }
    (browser.screenshot("editor-latency").parent / "preview-latency.json").write_text(json.dumps(figures, indent=2))
    print("keystroke → preview:", figures)
