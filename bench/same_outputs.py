"""Every demo sample and matching corpus file, run through its demo mapping in this tree and in another checkout:
the outputs, errors and warnings must be the same. Proof that a speed-up changed no result.

    .venv/bin/python bench/same_outputs.py --base /tmp/render_base    # exit 1 and a list of differences otherwise

Each tree runs in its own process (`--dump`), which prints one JSON line per case: the output (validated, with a fixed
run time) and every issue as its dict. Not a benchmark: it times nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))


def dump(root: Path) -> None:
    """One JSON line per (example, case): {"case", "output", "issues"}, for the engine and examples in `root`."""
    sys.path.insert(0, str(root))
    from datetime import UTC, datetime

    from mappings.engine import run_mapping
    from mappings.examples import list_examples

    now = datetime(2026, 1, 1, tzinfo=UTC)
    for example in list_examples(root / "examples"):
        compiled = example.compile()
        inputs = [(case.name, case.payload()) for case in example.cases]
        inputs += [(str(path.relative_to(CORPUS)), path.read_bytes()) for path in example.corpus_files(CORPUS)]
        for name, payload in inputs:
            result = run_mapping(compiled, payload, now=now)
            issues = [error.as_dict() for error in result.errors]
            line = {"case": f"{example.name}/{name}", "output": result.output, "issues": issues}
            sys.stdout.write(json.dumps(line, default=str) + "\n")  # key order too: the output is served as written


def _cases(python: str, root: Path) -> dict[str, str]:
    command = [python, str(Path(__file__).resolve()), "--dump", str(root)]
    text = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root).stdout
    return {json.loads(line)["case"]: line for line in text.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="another checkout of FHIR Studio (with .venv) to compare with")
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        dump(args.dump)
        return
    if not args.base:
        parser.error("--base is required")
    ours = _cases(sys.executable, ROOT)
    theirs = _cases(str(args.base / ".venv" / "bin" / "python"), args.base)
    differ = sorted(case for case in ours.keys() | theirs.keys() if ours.get(case) != theirs.get(case))
    for case in differ:
        print(f"differs: {case}")
    print(f"{len(ours)} cases here, {len(theirs)} in {args.base}; {len(differ)} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
