"""Engine throughput on one core: parse, render, post-process, validate and the full pipeline, per demo mapping.

    .venv/bin/python bench/engine.py                 # every case, 5 runs of ~1 s each per stage
    .venv/bin/python bench/engine.py --runs 7 --seconds 2 adt ccd
    .venv/bin/python bench/engine.py --stages render,postprocess adt

Times are CPU time of this process (time.process_time), so another program on the machine slows a run less than
it would wall time; still compare only figures measured in the same sitting.

Run by hand (never in CI); copy the table into bench/README.md with the machine it ran on. Pinned to one CPU so the
figures are per core. orjson loads+dumps of the same output is the floor any JSON pipeline pays.

Instructions instead of time (repeatable on a loaded machine): `--count N` runs N validated conversions of each case
and times nothing, with no render deadline (valgrind is ~50x slower); `--root` runs another checkout's engine. The
difference between N=200 and N=0, divided by 200, is the instructions per conversion:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/engine.py --count 200 --root /tmp/base adt     # and --count 0; run once before both,
                                                                              # so the compiled-code cache is warm
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import pipeline_stages  # noqa: E402

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))
CASES = {
    "adt": ("ADT^A01 → Bundle", "hl7v2-adt-a01", "fhir-converter/hl7v2/ADT-A01-01.hl7"),
    "oru": ("ORU^R01 → Bundle", "hl7v2-oru-r01", "fhir-converter/hl7v2/ORU-R01-01.hl7"),
    "vxu": ("VXU^V04 → Bundle", "hl7v2-vxu-v04", "fhir-converter/hl7v2/VXU-V04-01.hl7"),
    "ccd": ("C-CDA CCD → Bundle", "ccda-ccd", "fhir-converter/ccda/CCD.ccda"),
    "json": ("JSON → Patient", "json-patient", "fhir-converter/json/ExamplePatient.json"),
}
STAGES = {  # the rows of the table → pipeline_stages' names
    "parse": "parse",
    "render": "render",
    "postprocess": "post",
    "validate": "validate",
    "full pipeline": "validated",
    "full, no validation": "unvalidated",
    "orjson loads+dumps": "orjson",
}


def per_op_ms(work: Callable[[], object], seconds: float, runs: int) -> float:
    """Median over `runs` of the mean CPU time per call, each run calling `work` for about `seconds`."""
    clock = time.process_time
    started = clock()
    calls = 0
    while clock() - started < 0.2:  # warm-up, and an estimate of the calls per run
        work()
        calls += 1
    per_run = max(1, int(calls * seconds / 0.2))
    results = []
    for _ in range(runs):
        started = clock()
        for _ in range(per_run):
            work()
        results.append((clock() - started) * 1000 / per_run)
    return statistics.median(results)


def bench_case(key: str, seconds: float, runs: int, only: set[str]) -> list[tuple[str, str, float, int]]:
    from mappings.examples import find_example

    title, mapping, sample = CASES[key]
    if find_example(ROOT / "examples", mapping) is None:
        return []
    stages = pipeline_stages(ROOT, mapping, (CORPUS / sample).read_bytes())
    resources = stages["resources"]
    return [
        (title, stage, per_op_ms(stages[name], seconds, runs), resources)
        for stage, name in STAGES.items()
        if not only or stage in only
    ]


def count(root: Path, cases: list[str], n: int) -> None:
    """N validated conversions per case with `root`'s engine, after 20 unmeasured ones, for an instruction counter."""
    sys.path.insert(0, str(root))  # before anything imports the engine, so `root`'s is the one imported
    import types

    import mappings.engine.limits

    mappings.engine.limits.time = types.SimpleNamespace(perf_counter=lambda: 0.0)  # no render deadline
    for key in cases:
        _, mapping, sample = CASES[key]
        convert = pipeline_stages(root, mapping, (CORPUS / sample).read_bytes())["validated"]
        for _ in range(20 + n):
            convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--stages", default="", help="comma-separated stages to time (default: all)")
    parser.add_argument("--count", type=int, help="run this many validated conversions per case, timing nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose engine --count runs")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.count is not None:
        count(args.root, args.cases or list(CASES), args.count)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# one pinned core, CPU time, median of {args.runs} runs of ~{args.seconds:g} s each\n")
    print("| case | stage | ms/message | messages/s | resources/s |")
    print("|---|---|---:|---:|---:|")
    for key in args.cases or list(CASES):
        only = {stage.strip() for stage in args.stages.split(",") if stage.strip()}
        for title, stage, ms, resources in bench_case(key, args.seconds, args.runs, only):
            rate = 1000 / ms
            print(f"| {title} ({resources} res.) | {stage} | {ms:.3f} | {rate:,.0f} | {rate * resources:,.0f} |")


if __name__ == "__main__":
    main()
