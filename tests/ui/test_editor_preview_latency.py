"""How the live preview schedules its renders (static/src/lib/editor/preview.js, issue 14): a key renders at once when
no render is in flight, keys typed meanwhile are coalesced into one render of the latest text, and what is on screen
never goes back to older text. The latency figures themselves are in test_editor_page.py."""

from __future__ import annotations

import json
import re

import pytest

from tests.ui.test_editor_page import replace_all

ADT = "/mappings/hl7v2-adt-a01/"
BUNDLE_ID = re.compile(r'"type": "transaction", "id": "(\w*)"')
pytestmark = pytest.mark.timeout(120)

# Installed before the page's scripts: which fetches start before a zero-delay timer set at the key press fires (a
# debounce would send them later), and the template text of every preview drawn.
PROBE = """
window.__probe = { sentAtOnce: [], shown: [] };
const fetchFirst = window.fetch;
window.fetch = (url, init) => {
  if (String(url).endsWith("/render") && !JSON.parse(init.body).locate) {
    window.__probe.sentAtOnce.push(!window.__probe.timerFired);
  }
  return fetchFirst(url, init);
};
window.addEventListener("keydown", () => {
  window.__probe.timerFired = false;
  setTimeout(() => (window.__probe.timerFired = true), 0);
}, true);
new MutationObserver(() => {
  const state = window.fhirStudio;
  if (state && document.body.dataset.previewSeq) window.__probe.shown.push(state.lastRenderedTemplate);
}).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-preview-seq"] });
"""


class RenderRequests:
    """The keystroke renders (locate: false) the page sends, and the most that were in flight at once."""

    def __init__(self, page) -> None:
        self.sent = 0
        self.open = 0
        self.most_open = 0
        page.on("request", self.started)
        page.on("requestfinished", self.ended)
        page.on("requestfailed", self.ended)

    @staticmethod
    def is_keystroke_render(request) -> bool:
        return request.url.endswith("/render") and json.loads(request.post_data or "{}").get("locate") is False

    def started(self, request) -> None:
        if self.is_keystroke_render(request):
            self.sent += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)

    def ended(self, request) -> None:
        if self.is_keystroke_render(request):
            self.open -= 1


def open_adt_at_bundle_id(browser):
    """The ADT demo with the cursor inside a new Bundle id's string: typing there keeps the output a valid Bundle."""
    page = browser.page
    page.add_init_script(PROBE)
    browser.open(ADT, ready="body[data-preview-seq]")
    replace_all(page, '"type": "transaction"', '"type": "transaction", "id": "x"')
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+f")
    page.fill(".template-pane input[name=search]", '"id": "x"')
    page.keyboard.press("End")  # a key up: CodeMirror's search panel takes the new query (fill alone is not enough)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")  # from the selected match to its end, then back inside its closing quote
    page.keyboard.press("ArrowLeft")
    wait_until_settled(page)
    return page


def wait_until_settled(page) -> None:
    """Every render asked is drawn, and the template has not changed since the last one."""
    page.wait_for_function(
        "window.fhirStudio.shownSeq === window.fhirStudio.renderSeq"
        " && window.fhirStudio.lastRenderedTemplate === window.fhirStudio.templateText()"
    )


def bundle_id(page) -> str:
    """The Bundle id of the output on screen, which must be exactly the last answer's output, pretty-printed."""
    assert page.evaluate(
        "window.fhirStudio.outputText() === JSON.stringify(window.fhirStudio.lastResult.output, null, 2)"
    )
    return page.evaluate("window.fhirStudio.lastResult.output.id")


def test_a_key_typed_while_nothing_renders_is_sent_at_once(open_browser) -> None:
    page = open_adt_at_bundle_id(open_browser())
    page.evaluate("window.__probe.sentAtOnce.length = 0")
    for letter in "abc":
        page.keyboard.type(letter)
        wait_until_settled(page)
    assert page.evaluate("window.__probe.sentAtOnce") == [True, True, True]  # no timer waited for, key after key
    assert bundle_id(page) == "xabc"
    for _ in range(2):  # shorter text: only the changed span of the output is replaced, and it must still be exact
        page.keyboard.press("Backspace")
        wait_until_settled(page)
    assert bundle_id(page) == "xa"


def test_a_burst_of_keys_makes_few_renders_and_ends_on_the_last_text(open_browser) -> None:
    browser = open_browser()
    page = open_adt_at_bundle_id(browser)
    requests = RenderRequests(page)
    page.evaluate("window.__probe.shown.length = 0")
    typed = "abcdefghijklmnopqrst"
    page.keyboard.type(typed)  # 20 keys, faster than a render
    wait_until_settled(page)
    assert bundle_id(page) == "x" + typed
    assert requests.most_open == 1  # one render in flight at a time: answers come back in the order asked
    assert 2 <= requests.sent < len(typed) // 2  # the first key at once, the rest coalesced per round trip
    shown_ids = [BUNDLE_ID.search(text)[1] for text in page.evaluate("window.__probe.shown")]
    assert shown_ids == sorted(shown_ids, key=len)  # never back to older text
    assert shown_ids[-1] == "x" + typed
    assert page.locator("#preview-state").inner_text().startswith("preview ")


def template_places(page) -> list[str]:
    """Where the problems list says each problem of the root template is (`template.j2:20`…)."""
    places = page.locator("#problems .problem .where").all_inner_texts()
    return [place for place in places if place.startswith("template")]


def test_located_issues_keep_their_place_while_typing_and_are_located_again_after_a_pause(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    # An invalid uri on line 20, where the Bundle's timestamp is written: an issue located in the root template.
    replace_all(page, '"timestamp":', '"implicitRules": "not a uri", "timestamp":')
    page.wait_for_function(
        "[...document.querySelectorAll('#problems .where')].some((where) => where.textContent === 'template.j2:20')"
    )
    assert page.locator(".template-pane .cm-lintRange-error").count() == 1
    locating = []
    page.on("request", lambda request: request.url.endswith("/render") and locating.append(request.post_data))
    page.click(".template-pane .cm-line >> nth=18")  # line 19, above it
    page.keyboard.press("End")
    page.keyboard.press("Enter")  # a new line: the issue moves to line 21
    wait_until_settled(page)
    assert template_places(page) == ["template.j2:21"]  # at once, from where its underline moved: no second render
    assert page.locator(".template-pane .cm-lintRange-error").count() == 1
    assert [json.loads(body)["locate"] for body in locating] == [False]
    page.wait_for_timeout(800)  # a pause: it is located again
    assert [json.loads(body)["locate"] for body in locating] == [False, True]
    assert template_places(page) == ["template.j2:21"]
