"""Page speed the analyst feels, against running studios: navigation start → `body[data-ready]` in Chromium, for the
pages issue 11 names (tests/ui/page_timing.py does the timing; tests/ui/test_page_speed.py holds the budget).

    ./scripts/run &                                   # or gunicorn as scripts/run starts it
    .venv/bin/python bench/pages.py --url http://127.0.0.1:8000 [--url http://127.0.0.1:8001] [--rounds 5]
        [--cpu-slowdown 4 --network vpn] [--waterfall] ["editor (ADT)" ...]

Each round times each page on each studio in turn (interleaved, so a busy neighbour slows both alike): a first
visit with an empty HTTP cache, then --runs visits that reuse it. The table gives medians over the rounds."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from tests.ui.page_timing import PAGES, time_page, watch_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

# Emulated links (DevTools Network.emulateNetworkConditions): bytes per second each way, added round trip in ms.
NETWORKS = {
    "local": None,
    "lan": {"downloadThroughput": 100e6 / 8, "uploadThroughput": 100e6 / 8, "latency": 2},
    "vpn": {"downloadThroughput": 10e6 / 8, "uploadThroughput": 5e6 / 8, "latency": 40},
}


def throttle(context, page, *, cpu_slowdown: float, network: dict | None) -> None:
    session = context.new_cdp_session(page)
    if cpu_slowdown != 1:
        session.send("Emulation.setCPUThrottlingRate", {"rate": cpu_slowdown})
    if network:
        session.send("Network.enable")
        session.send("Network.emulateNetworkConditions", {"offline": False, **network})
    # kept attached: the emulation lasts as long as the session


def waterfall_line(entry: dict, url: str) -> str:
    wire, body = entry["transferred"] / 1024, entry["body"] / 1024
    return f"  {entry['start']:7.1f} → {entry['end']:7.1f}  {wire:7.1f} KiB on the wire, {body:7.1f} KiB  " + entry[
        "name"
    ].removeprefix(url)


def logged_in(browser, url: str, args: argparse.Namespace):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
    watch_ready(context)
    page = context.new_page()
    page.set_default_timeout(30_000)
    throttle(context, page, cpu_slowdown=args.cpu_slowdown, network=NETWORKS[args.network])
    page.goto("/login/")
    page.fill("input[name=username]", args.user)
    page.fill("input[name=password]", args.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return context, page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", help="a running studio (repeat to compare; default :8000)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="visits with a warm cache per round")
    parser.add_argument(
        "--cpu-slowdown", type=float, default=1, help="Chromium's CPU throttling rate (4: a slow laptop)"
    )
    parser.add_argument(
        "--network",
        choices=sorted(NETWORKS),
        default="local",
        help="emulated link: local (none), lan (100 Mbit/s, 2 ms), vpn (10 Mbit/s down, 40 ms round trip)",
    )
    parser.add_argument("--waterfall", action="store_true", help="list each first visit's requests (start → end, ms)")
    parser.add_argument("pages", nargs="*", help="page names to time (default: all)")
    args = parser.parse_args()
    urls = args.url or ["http://127.0.0.1:8000"]
    names = [name for name in PAGES if not args.pages or name in args.pages]

    first: dict[tuple[str, str], list[float]] = {}
    again: dict[tuple[str, str], list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        sessions = {url: logged_in(browser, url, args) for url in urls}
        for name in names:
            for _ in range(args.rounds):
                for url, (context, page) in sessions.items():
                    try:
                        timing = time_page(context, page, name, PAGES[name], runs=args.runs)
                    except Exception as error:  # noqa: BLE001 - a page that never gets ready is a result too
                        print(f"{url} {name}: not ready ({str(error).splitlines()[0]})", file=sys.stderr)
                        continue
                    first.setdefault((url, name), []).append(timing.first.ready_ms)
                    again.setdefault((url, name), []).extend(load.ready_ms for load in timing.again)
                    if args.waterfall:
                        print(f"\n{url} {name}: ready {timing.first.ready_ms:.0f} ms (first visit)")
                        for entry in timing.first.resources:
                            print(waterfall_line(entry, url))
        browser.close()

    def cell(figures: list[float] | None) -> str:
        return f"{statistics.median(figures):.0f}" if figures else "never"

    print(f"\nCPU slowdown {args.cpu_slowdown:g}×, network {args.network}; medians of {args.rounds} rounds (ms)\n")
    print("| page | " + " | ".join(f"{url} first visit | {url} again" for url in urls) + " |")
    print("|---|" + "---:|---:|" * len(urls))
    for name in names:
        cells = [f"{cell(first.get((url, name)))} | {cell(again.get((url, name)))}" for url in urls]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
