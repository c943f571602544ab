"""How long a page takes to become usable, on the browser's own clock: navigation start → the moment the page's
script sets `body[data-ready]` (every page script sets it once its data is on screen and its controls work).

A MutationObserver installed before any page script (`context.add_init_script`) notes `performance.now()` when the
attribute appears, so Playwright's polling adds nothing; navigation start is the navigation entry's `startTime`.
Used by tests/ui/test_page_speed.py (against pytest's live server) and bench/pages.py (against a running studio)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

READY_OBSERVER = """
(() => {
  const seen = () => {
    if (window.__readyAt === undefined && document.body && document.body.hasAttribute("data-ready")) {
      window.__readyAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, { subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-ready"] });
})();
"""

TIMINGS = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    ready: window.__readyAt - nav.startTime,
    html: nav.responseEnd - nav.startTime,
    domContentLoaded: nav.domContentLoadedEventEnd - nav.startTime,
    resources: performance.getEntriesByType("resource").map((entry) => ({
      name: entry.name, start: entry.startTime, end: entry.responseEnd, transferred: entry.transferSize,
      body: entry.decodedBodySize, type: entry.initiatorType,
    })),
  };
}
"""

# Every page of the studio, on the demo content (a batch's own page needs a batch: tests/ui/test_batches_page.py).
PAGES = {
    "mapping list": "/",
    "editor (ADT)": "/mappings/hl7v2-adt-a01/",
    "editor (CSV)": "/mappings/csv-patients/",
    "versions (ADT)": "/mappings/hl7v2-adt-a01/history",
    "snippet": "/library/snippets/snippets/hl7v2/datatypes.j2",
    "lookup table": "/library/lookup-tables/administrative-gender",
    "snippet list": "/library/snippets/",
    "lookup table list": "/library/lookup-tables/",
    "facades list": "/facades/",
    "facade (demo)": "/facades/demo/",
    "API docs": "/api/docs/",
    "batches list": "/batches/",
    "message log": "/messages/",
    "profiles list": "/profiles/",
    "profile (Patient)": "/profiles/http%3A%2F%2Fhl7.org%2Ffhir%2FStructureDefinition%2FPatient",
}


@dataclass
class Load:
    ready_ms: float
    html_ms: float
    dom_content_loaded_ms: float
    resources: list[dict] = field(default_factory=list)

    @property
    def script_kib(self) -> float:
        return sum(entry["body"] for entry in self.resources if entry["name"].split("?")[0].endswith(".js")) / 1024

    @property
    def transferred_kib(self) -> float:
        return sum(entry["transferred"] for entry in self.resources) / 1024


@dataclass
class PageTiming:
    name: str
    first: Load  # an empty HTTP cache: the first visit of the session
    again: list[Load]  # visits with what the first one cached

    @property
    def best_ms(self) -> float:
        return min(load.ready_ms for load in self.again)

    @property
    def median_ms(self) -> float:
        return statistics.median(load.ready_ms for load in self.again)


def watch_ready(context) -> None:
    """Call once per browser context, before its pages open."""
    context.add_init_script(READY_OBSERVER)


def load_once(page, url: str, *, timeout_ms: int = 15_000) -> Load:
    page.goto(url)
    page.wait_for_function("window.__readyAt !== undefined", timeout=timeout_ms)
    figures = page.evaluate(TIMINGS)
    return Load(
        round(figures["ready"], 1),
        round(figures["html"], 1),
        round(figures["domContentLoaded"], 1),
        figures["resources"],
    )


def time_page(context, page, name: str, url: str, *, runs: int = 3) -> PageTiming:
    """The first load of `url` with an empty HTTP cache, then `runs` loads that reuse it. Clears the context's cache
    first (through the DevTools protocol), so pages timed one after another do not warm each other's first load."""
    session = context.new_cdp_session(page)
    session.send("Network.clearBrowserCache")
    session.detach()
    first = load_once(page, url)
    return PageTiming(name, first, [load_once(page, url) for _ in range(runs)])
