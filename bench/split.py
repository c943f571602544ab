"""Split speed: a file of N concatenated HL7 v2 messages, read through a binary file object as a batch would.

    .venv/bin/python bench/split.py                              # 100,000 × ADT-A01-01.hl7 (8.5 KB, 855 MB)
    .venv/bin/python bench/split.py --count 100000 --message fhir-converter/hl7v2/ADT-A01-02.hl7 --runs 3

Run by hand (never in CI). The file is written once to a temporary directory, read once to warm the page cache, and
then split `--runs` times; the best run is printed as messages/s and MB/s, with the peak RSS. Pinned to one CPU, like
bench/engine.py.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mappings.engine import split_messages  # noqa: E402

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--message", default="fhir-converter/hl7v2/ADT-A01-01.hl7", help="relative to the corpus")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    message = (CORPUS / args.message).read_bytes().rstrip(b"\r\n") + b"\r\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.hl7"
        with path.open("wb") as out:
            for _ in range(args.count):
                out.write(message)
        size = path.stat().st_size
        with path.open("rb") as warm:
            while warm.read(1 << 24):
                pass
        best = float("inf")
        for _ in range(args.runs):
            started = time.perf_counter()
            with path.open("rb") as stream:
                found = sum(1 for _ in split_messages(stream, source_format="hl7v2", filename="batch.hl7"))
            best = min(best, time.perf_counter() - started)
            assert found == args.count, found
    print(f"{args.message}: {len(message):,} bytes × {args.count:,} = {size / 1e6:,.0f} MB")
    rate = f"{args.count / best:,.0f} messages/s, {size / 1e6 / best:,.0f} MB/s"
    print(f"split in {best:.2f} s (best of {args.runs}): {rate}")
    # Streaming keeps memory flat: the peak is the interpreter plus a few chunks, whatever the file size.
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
