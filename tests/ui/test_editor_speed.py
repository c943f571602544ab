"""How fast the editor becomes usable: from navigation start (the Navigation Timing API's time origin) to the page's
`body[data-ready]` marker, on the demo's ADT mapping. The target is 500 ms; the figures land in
test-artifacts/ui/editor-load.json (and bench/README.md)."""

from __future__ import annotations

import json
import statistics

import pytest

ADT = "/mappings/hl7v2-adt-a01/"
TARGET_MS = 500
pytestmark = pytest.mark.timeout(180)

# Installed before any page script runs: note when the page sets body[data-ready], on the navigation's clock.
READY_PROBE = """
new MutationObserver((_, observer) => {
  const body = document.body;
  if (body && body.dataset.ready && window.__readyAt === undefined) window.__readyAt = performance.now();
  if (document.body && document.body.dataset.previewSeq) {
    window.__previewAt = performance.now();
    observer.disconnect();
  }
}).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-ready", "data-preview-seq"] });
"""


def load_once(page) -> dict:
    page.goto(ADT)
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_function("window.__readyAt !== undefined && window.__previewAt !== undefined")
    return page.evaluate(
        """() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const api = performance.getEntriesByType("resource").filter((entry) => entry.name.includes("/api/"));
          const scripts = performance.getEntriesByType("resource").filter((entry) => entry.name.endsWith(".js"));
          return {
            ready_ms: window.__readyAt,
            preview_ms: window.__previewAt,
            html_ms: nav.responseEnd,
            dom_content_loaded_ms: nav.domContentLoadedEventEnd,
            api_requests: api.map((entry) => [new URL(entry.name).pathname, entry.initiatorType,
                                              Math.round(entry.startTime), Math.round(entry.responseEnd)]),
            script_bytes: scripts.reduce((sum, entry) => sum + (entry.decodedBodySize || 0), 0),
          };
        }"""
    )


def test_the_editor_is_usable_within_half_a_second(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    page.add_init_script(READY_PROBE)
    load_once(page)  # warm the server: its first-request imports and caches
    cold = []
    for _ in range(3):  # a first visit: a new browser context, nothing cached
        fresh = open_browser()
        fresh.page.add_init_script(READY_PROBE)
        cold.append(load_once(fresh.page))
        fresh.close()
    renders = []  # the JSON body of every preview request, to tell the fast render from the one that locates issues

    def note_render(request) -> None:
        if request.url.endswith("/render"):
            renders.append(json.loads(request.post_data or "{}"))

    page.on("request", note_render)
    runs = []
    for _ in range(7):
        renders.clear()
        runs.append(load_once(page))
    page.wait_for_timeout(300)  # a locating render, if any, has been sent by now
    ready = [run["ready_ms"] for run in runs]
    figures = {
        "first_visit_ready_ms": [round(run["ready_ms"], 1) for run in cold],
        "first_visit_preview_ms": [round(run["preview_ms"], 1) for run in cold],
        "first_visit_script_bytes": cold[-1]["script_bytes"],
        "runs": len(runs),
        "preview_p50_ms": round(statistics.median(run["preview_ms"] for run in runs), 1),
        "ready_p50_ms": round(statistics.median(ready), 1),
        "ready_max_ms": round(max(ready), 1),
        "html_p50_ms": round(statistics.median(run["html_ms"] for run in runs), 1),
        "dom_content_loaded_p50_ms": round(statistics.median(run["dom_content_loaded_ms"] for run in runs), 1),
        "script_bytes": runs[-1]["script_bytes"],
        "api_requests_last_run": runs[-1]["api_requests"],
    }
    (browser.screenshot("editor-loaded").parent / "editor-load.json").write_text(json.dumps(figures, indent=2))
    print("editor load:", json.dumps(figures, indent=2))
    assert figures["ready_p50_ms"] <= TARGET_MS, figures

    # What made it slow must not come back: the start-up reads are asked for once each (preloaded with the HTML or
    # at least together, not one after the other), one render (not a second, debounced one for the same text), and
    # no source tree until its tab is shown.
    asked = [path.removeprefix("/api/mappings/hl7v2-adt-a01") for path, *_ in runs[-1]["api_requests"]]
    for read in ("/draft", "/samples/", "/test-runs/"):
        assert asked.count(read) == 1, asked
    # One fast render; the ADT demo's output has validation warnings (extensible identifier types, con-3), so one
    # second request locates them at their template lines, as designed. Never a second fast render of the same text.
    fast = [body for body in renders if not body.get("locate")]
    assert len(fast) == 1, renders
    assert len(renders) - len(fast) <= 1, renders
    assert "/source-tree" not in asked
    starts = {path: start for path, _, start, _ in runs[-1]["api_requests"]}
    ends = {path: end for path, _, _, end in runs[-1]["api_requests"]}
    base = "/api/mappings/hl7v2-adt-a01"
    first_answer = min(ends[base + read] for read in ("/draft", "/samples/", "/test-runs/"))
    assert all(starts[base + read] <= first_answer for read in ("/draft", "/samples/", "/test-runs/")), starts
