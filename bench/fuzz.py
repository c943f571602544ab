"""The source-parser fuzzing of tests/engine/test_fuzz_parsers.py, deeper: by hand, not in CI.

    .venv/bin/python bench/fuzz.py [--examples 20000] [--formats hl7v2,csv,xml,json,ndjson,fhir] [--seed 0]

For each format, `--examples` payloads from the test's strategies go through the engine's source parsing and a run of
a template that walks what was parsed: any exception other than the engine's MappingError, or a run that raises, is a
failure, printed (hypothesis shrinks it to a minimal payload) with the format and the exception. Prints one line per
format: examples run, failures, seconds. Exit status 1 when any format failed. Figures go in bench/README.md."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.engine.test_fuzz_parsers import STRATEGIES, check_payload  # noqa: E402


def fuzz(source_format: str, examples: int, random_seed: int) -> tuple[int, str | None, float]:
    strategy, template = STRATEGIES[source_format]
    count = 0

    @seed(random_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(payload: str) -> None:
        nonlocal count
        count += 1
        check_payload(payload, source_format, template)

    started = time.perf_counter()
    try:
        run()
    except Exception:  # noqa: BLE001 — the report of a found failure, printed whole
        return count, traceback.format_exc(limit=6), time.perf_counter() - started
    return count, None, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--formats", default=",".join(STRATEGIES))
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    failed = False
    for source_format in options.formats.split(","):
        count, failure, seconds = fuzz(source_format, options.examples, options.seed)
        sys.stdout.write(f"{source_format:7} {count:7,} examples  {'FAILED' if failure else 'ok':6} {seconds:7.1f} s\n")
        if failure:
            sys.stdout.write(failure + "\n")
            failed = True
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
