"""The API docs page in Chromium: Swagger UI renders the studio's operations from files the studio serves itself
(nothing from a CDN: requests leaving the studio are refused here, as they would fail offline), inside the studio's
navigation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def test_it_renders_the_operations_offline_inside_the_studio_navigation(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    requested: list[str] = []
    refused: list[str] = []

    def only_the_studio(route) -> None:
        url = route.request.url
        requested.append(url)
        if url.startswith(browser.base_url):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", only_the_studio)
    browser.open("/api/docs/")  # body[data-ready]: Swagger UI's onComplete, once the definition is on the page

    browser.screenshot("api-docs")
    tags = page.locator(".swagger-ui .opblock-tag").all_inner_texts()
    assert {"mappings", "facades", "snippets", "lookup-tables"} <= {tag.split()[0] for tag in tags}, tags
    for tag in ("mappings", "snippets"):
        page.click(f".swagger-ui .opblock-tag[data-tag={tag}]")
    page.wait_for_selector(".swagger-ui .opblock-summary-path[data-path='/api/snippets/{name}']")
    paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    assert len(paths) >= 25, paths
    assert "/api/mappings/" in paths and "/api/snippets/{name}" in paths
    assert not refused, f"the page asked for files outside the studio: {refused}"
    sources = page.eval_on_selector_all(
        "script[src], link[rel=stylesheet], link[rel=icon], link[rel=modulepreload]",
        "(elements) => elements.map((element) => element.src || element.href)",
    )
    outside = [url for url in sources if not (url.startswith(browser.base_url) or url.startswith("data:"))]
    assert not outside, outside
    assert any("swagger-ui-bundle.js" in url for url in requested)

    nav = page.locator("header.topbar nav")
    for href in ("/", "/facades/", "/library/snippets/", "/library/lookup-tables/", "/api/docs/"):
        assert nav.locator(f"a[href='{href}']").count() == 1
    assert page.title() == "API · FHIR Studio"

    page.locator(".swagger-ui .opblock-summary-path", has_text="/api/mappings/").first.click()
    page.wait_for_selector(".swagger-ui .opblock.is-open .try-out")
    browser.screenshot("api-docs-operation")
