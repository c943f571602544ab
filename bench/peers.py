"""FHIR Studio beside a peer converter and beside an older commit of itself, interleaved in one run on one core.

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r bench/requirements-peer.txt   # once
    .venv/bin/python bench/peers.py                                  # this tree and hl7v2-fhir-bridge, ADT
    .venv/bin/python bench/peers.py --base /tmp/b-base adt oru vxu ccd --rounds 11

Each side is a long-lived worker process (this tree, `--base`'s tree with its own copy of this file's worker, and
hl7v2-fhir-bridge 0.1.0 in its own venv, so its pinned fhir.resources never meets ours), all pinned to one core.
Each round asks every worker in turn to time one stage for about `--seconds` of CPU time (time.process_time, after a
warm-up), so the sides see the same moment of a shared machine; the table gives the median of the rounds per side
and the median of the per-round ratios with their interquartile range.

Stages: ours `render` (the compiled template alone, on a parsed message), `post` (post-processing its text),
`unvalidated` and `validated` (run_mapping from the payload bytes); the bridge's `unvalidated` (parse_bytes +
convert) and `validated` (the same + its validate_bundle: fhir.resources R4B plus its bindings). The bridge maps
ADT only here (a radiology subset: ORU/VXU corpus messages are not its kind, and it reads no C-CDA).

Run by hand (never in CI); copy the table into bench/README.md with the machine state (`cat /proc/loadavg`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus")) / "fhir-converter"
SAMPLES = {
    "adt": ("hl7v2-adt-a01", "hl7v2/ADT-A01-01.hl7"),
    "oru": ("hl7v2-oru-r01", "hl7v2/ORU-R01-01.hl7"),
    "vxu": ("hl7v2-vxu-v04", "hl7v2/VXU-V04-01.hl7"),
    "ccd": ("ccda-ccd", "ccda/CCD.ccda"),
}
OUR_STAGES = ("render", "post", "unvalidated", "validated")
BRIDGE_STAGES = ("unvalidated", "validated")


def time_per_call_ms(work, seconds: float) -> float:
    """Mean CPU ms per call over about `seconds` of calls, after a warm-up that also sizes the batch."""
    clock = time.process_time
    started, calls = clock(), 0
    while clock() - started < min(0.1, seconds / 3):
        work()
        calls += 1
    batch = max(1, int(calls * seconds / min(0.1, seconds / 3)))
    started = clock()
    for _ in range(batch):
        work()
    return (clock() - started) * 1000 / batch


def pipeline_stages(root: Path, mapping: str, payload: bytes) -> dict:
    """Every stage of FHIR Studio's pipeline as a function of no arguments, for `mapping` (a demo in `root`'s
    examples) on `payload`: parse, render (the compiled template alone, on a parsed message), post, validate (the
    parsed output), unvalidated and validated (run_mapping from the bytes), orjson (loads+dumps of the output, the
    floor of any JSON pipeline); and "resources", the count of resources in the output. bench/engine.py uses it too.
    Imports the engine from `root`, so a worker can time an older checkout."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from datetime import UTC, datetime

    import orjson

    from mappings.engine import Limits, parse_source, run_mapping
    from mappings.engine.limits import end_budget, start_budget
    from mappings.engine.pipeline import _render
    from mappings.engine.postprocess import postprocess
    from mappings.engine.validate import validate_output
    from mappings.examples import find_example

    compiled = find_example(root / "examples", mapping).compile()
    limits, now = Limits(), datetime(2026, 1, 1, tzinfo=UTC)
    result = run_mapping(compiled, payload, now=now)
    assert result.ok, [error.as_dict() for error in result.errors]  # warnings (extensible bindings) are expected
    output, output_bytes = result.output, orjson.dumps(result.output)
    msg = parse_source(payload, compiled.source_format, options=compiled.source_options, limits=limits)
    context = {"msg": msg, "source_format": compiled.source_format, "vars": {}, "now": "2026-01-01T00:00:00Z"}

    def render() -> str:
        token = start_budget(limits)
        try:
            return _render(compiled, context, limits)
        finally:
            end_budget(token)

    text = render()
    # A compiled mapping remembers which clean-up parsed its last output (CompiledMapping.route, since 5a6ee96):
    # the post row gets it too, as run_mapping does; an older checkout's postprocess takes the text alone.
    route = getattr(compiled, "route", None)
    post = (lambda: postprocess(text, route)) if route is not None else (lambda: postprocess(text))
    return {
        "parse": lambda: parse_source(payload, compiled.source_format, options=compiled.source_options, limits=limits),
        "render": render,
        "post": post,
        "validate": lambda: validate_output(output),
        "validated": lambda: run_mapping(compiled, payload, limits=limits, now=now),
        "unvalidated": lambda: run_mapping(compiled, payload, limits=limits, now=now, validate=False),
        "orjson": lambda: orjson.dumps(orjson.loads(output_bytes)),
        "resources": len(output.get("entry", [])) if output["resourceType"] == "Bundle" else 1,
    }


def _bridge_stages(case: str) -> dict:
    from datetime import UTC, datetime

    from v2fhir.config import load_config
    from v2fhir.convert import convert
    from v2fhir.hl7.parser import parse_bytes
    from v2fhir.validate import validate_bundle

    config, now = load_config(), datetime(2026, 1, 1, tzinfo=UTC)
    payload = (CORPUS / SAMPLES[case][1]).read_bytes()
    validate_bundle(convert(parse_bytes(payload), config, now=now).bundle)  # raises if the bridge's output is invalid
    return {
        "unvalidated": lambda: convert(parse_bytes(payload), config, now=now),
        "validated": lambda: validate_bundle(convert(parse_bytes(payload), config, now=now).bundle),
    }


def worker(kind: str, root: Path) -> None:
    """Answer `case stage seconds` lines with the CPU ms per call, one line each, until stdin closes."""
    stages: dict[str, dict] = {}
    for line in sys.stdin:
        case, stage, seconds = line.split()
        if case not in stages:
            stages[case] = (
                _bridge_stages(case)
                if kind == "bridge"
                else pipeline_stages(root, SAMPLES[case][0], (CORPUS / SAMPLES[case][1]).read_bytes())
            )
        sys.stdout.write(f"{time_per_call_ms(stages[case][stage], float(seconds)):.6f}\n")
        sys.stdout.flush()


def _start(name: str, python: str, kind: str, root: Path, core: int) -> tuple[str, subprocess.Popen]:
    # The worker code is this file's, whatever tree it measures: an older commit may not have bench/peers.py.
    command = ["taskset", "-c", str(core), python, str(Path(__file__).resolve()), "--worker", kind, "--root", str(root)]
    return name, subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root)


def _ask(process: subprocess.Popen, case: str, stage: str, seconds: float) -> float:
    process.stdin.write(f"{case} {stage} {seconds}\n")
    process.stdin.flush()
    answer = process.stdout.readline()
    if not answer:
        raise SystemExit(f"a worker stopped (exit {process.wait()}) on {case} {stage}")
    return float(answer)


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", default=["adt"], help=f"any of {', '.join(SAMPLES)} (default: adt)")
    parser.add_argument("--base", type=Path, help="another checkout of FHIR Studio (with .venv) to time beside this")
    parser.add_argument("--bridge-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--core", type=int, default=1)
    parser.add_argument("--worker", choices=["ours", "bridge"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.root)
        return
    workers = [_start("this tree", sys.executable, "ours", ROOT, args.core)]
    if args.base:
        workers.insert(
            0, _start(f"base {args.base}", str(args.base / ".venv" / "bin" / "python"), "ours", args.base, args.core)
        )
    if Path(args.bridge_python).exists():
        workers.append(_start("hl7v2-fhir-bridge", args.bridge_python, "bridge", ROOT, args.core))
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    for _ in range(args.rounds):
        for case in args.cases:
            for stage in OUR_STAGES:
                for name, process in workers:
                    if name == "hl7v2-fhir-bridge" and (case != "adt" or stage not in BRIDGE_STAGES):
                        continue
                    rows.setdefault((case, stage), {}).setdefault(name, []).append(
                        _ask(process, case, stage, args.seconds)
                    )
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    for _, process in workers:
        process.stdin.close()
        process.wait()
    names = [name for name, _ in workers]
    reference = "this tree"
    print(
        f"# core {args.core}, CPU time, {args.rounds} interleaved rounds of ~{args.seconds:g} s per side and stage; "
        f"load (1 min) {min(loads)}–{max(loads)}"
    )
    print(
        "| case | stage | "
        + " | ".join(f"{name} ms (/s)" for name in names)
        + " | their ms ÷ this tree's, per round (IQR): > 1 = this tree faster |"
    )
    print("|---|---|" + "---:|" * (len(names) + 1))
    for (case, stage), by_name in rows.items():
        cells, ratios = [], []
        for name in names:
            times = by_name.get(name)
            cells.append(f"{statistics.median(times):.3f} ({1000 / statistics.median(times):,.0f})" if times else "–")
            if times and name != reference:
                per_round = [other / ours for other, ours in zip(times, by_name[reference], strict=True)]
                low, high = _quartiles(per_round)
                ratios.append(f"{name.split()[0]} {statistics.median(per_round):.2f}× ({low:.2f}–{high:.2f})")
        print(f"| {case} | {stage} | " + " | ".join(cells) + " | " + "; ".join(ratios) + " |")


if __name__ == "__main__":
    main()
