"""Long titles, names and descriptions do not widen a page: they wrap, or end in an ellipsis where a line is all
there is (the editor's toolbar), and the page keeps the window's width (no sideways scrolling)."""

from __future__ import annotations

import pytest

from mappings.actions import (
    do_create_facade,
    do_create_lookup_table,
    do_create_mapping,
    do_create_snippet,
    do_publish_version,
)

pytestmark = pytest.mark.timeout(180)

# One unbroken word is the worst case: nothing to wrap at unless the stylesheet allows breaking anywhere.
WORD = "Pneumologie" + "Ambulanzaufnahmeübermittlung" * 7
TITLE = f"{WORD} and then ordinary words that go on " + "and on " * 14
SNIPPET = "snippets/common/" + "very-long-role-name-" * 8 + "datatypes.j2"
TABLE = "a-" + "very-long-table-name-" * 4 + "codes"

# The right edge of what is laid out, against the window's: the page, the header, each heading, toolbar and table.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("main, header, h1, h2, .toolbar, .page-head, table, form, nav, select")]
    .filter((element) => element.getBoundingClientRect().right > width + 1)
    .map((element) => `${element.tagName.toLowerCase()}#${element.id}.${element.className}`);
  return { scroll: document.documentElement.scrollWidth - width, wide };
}"""


@pytest.fixture
def long_named(studio) -> dict:
    author = studio["author"]
    mapping = do_create_mapping(
        acting_user=author,
        slug="long-title",
        title=TITLE[:200],
        source_format="json",
        template='{"resourceType": "Patient"}',
    )
    do_publish_version(mapping, acting_user=author, message=WORD)
    do_create_snippet(acting_user=author, name=SNIPPET, text="{# long #}\n", description=TITLE)
    do_create_lookup_table(acting_user=author, name=TABLE, data={"entries": []}, description=TITLE)
    do_create_facade(acting_user=author, slug="long-facade", title=TITLE[:200])
    return {"mapping": mapping}


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/mappings/long-title/",
        "/mappings/long-title/history",
        "/library/snippets/",
        f"/library/snippets/{SNIPPET}",
        "/library/lookup-tables/?search=very-long",
        f"/library/lookup-tables/{TABLE}",
        "/facades/",
        "/facades/long-facade/",
    ],
)
def test_it_keeps_long_titles_within_the_window(open_browser, long_named, path) -> None:
    browser = open_browser()
    page = browser.page
    page.set_viewport_size({"width": 1024, "height": 768})
    browser.open(path)
    overflow = page.evaluate(OVERFLOW)
    name = path.strip("/").replace("/", "-").replace("?", "-") or "mapping-list"
    browser.screenshot(f"long-titles-{name}")
    assert overflow == {"scroll": 0, "wide": []}, f"{path} is wider than the window: {overflow}"
