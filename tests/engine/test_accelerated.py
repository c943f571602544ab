"""The engine's hot modules compiled by Cython (mappings/engine/accelerated.py, scripts/build_accelerated.py): used
only while built from the source as it is, the same answers as plain Python, and no new way out of the sandbox.

CI sets FHIR_STUDIO_REQUIRE_ACCELERATED=1 (scripts/test builds the modules first), so there the compiled side is
never skipped; without a build (no C compiler) the studio runs the plain modules and those checks skip."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mappings.engine import accelerated, compile_mapping, run_mapping
from mappings.engine.environment import build_environment
from mappings.engine.filters.values import fhir_id
from mappings.engine.hl7v2 import parse_hl7v2

ROOT = Path(__file__).resolve().parents[2]
BUILT = all(
    accelerated.built_path(name, accelerated.source_path(name).read_bytes()).is_file() for name in accelerated.MODULES
)
needs_build = pytest.mark.skipif(
    not BUILT and not os.environ.get("FHIR_STUDIO_REQUIRE_ACCELERATED"),
    reason="the engine modules are not compiled here (scripts/build_accelerated.py)",
)

# Every example mapping on its samples and corpus files through run_mapping, with every compiled module imported:
# the compiled modules as a JSON object, then one JSON text per case (key order kept: outputs are served as written).
EXAMPLES_RUN = """
import importlib, json, os, sys
from datetime import UTC, datetime
from pathlib import Path
from mappings.engine import accelerated, run_mapping
from mappings.examples import list_examples
corpus = Path(sys.argv[2])
for module in accelerated.MODULES:
    importlib.import_module(module)
print(json.dumps(accelerated.loaded_compiled()))
for example in list_examples(Path(sys.argv[1])):
    compiled = example.compile()
    inputs = [(case.name, case.payload()) for case in example.cases]
    inputs += [(str(path.relative_to(corpus)), path.read_bytes()) for path in example.corpus_files(corpus)]
    for name, payload in inputs:
        result = run_mapping(compiled, payload, now=datetime(2026, 1, 1, tzinfo=UTC))
        print(json.dumps([f"{example.name}/{name}", result.output, [e.as_dict() for e in result.errors]]))
"""
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))


def run_examples(**env: str) -> tuple[dict[str, bool], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", EXAMPLES_RUN, str(ROOT / "examples"), str(CORPUS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=600,
        check=True,
    )
    compiled, *cases = done.stdout.splitlines()
    return json.loads(compiled), cases


@needs_build
def test_every_listed_module_runs_compiled() -> None:
    for name in accelerated.MODULES:
        importlib.import_module(name)
    assert accelerated.loaded_compiled() == dict.fromkeys(accelerated.MODULES, True)


@needs_build
def test_compiled_and_plain_modules_give_the_same_outputs_and_issues() -> None:
    plain_modules, plain = run_examples(FHIR_STUDIO_PURE_PYTHON="1")
    compiled_modules, compiled = run_examples()
    assert set(plain_modules.values()) == {False}
    assert compiled_modules == dict.fromkeys(accelerated.MODULES, True)
    assert len(plain) >= 60  # bench/same_outputs.py's cases: 17 samples and the corpus files they cover
    assert compiled == plain
    assert sum('"resourceType": "Bundle"' in case for case in plain) >= 40


@needs_build
def test_an_edited_module_is_imported_from_its_source_not_its_old_build(tmp_path, monkeypatch) -> None:
    name = "mappings.engine.hl7v2_text"
    spec = accelerated._FINDER.find_spec(name)
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    edited = tmp_path / "hl7v2_text.py"
    edited.write_bytes(accelerated.source_path(name).read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(accelerated, "source_path", lambda module: edited)
    assert accelerated._FINDER.find_spec(name) is None  # Python's own import then reads the .py


def test_a_build_is_named_by_its_source_and_build_options(monkeypatch) -> None:
    source = b"x = 1\n"
    first = accelerated.built_path("mappings.engine.lookup", source)
    assert accelerated.built_path("mappings.engine.lookup", source + b"\n") != first
    monkeypatch.setattr(accelerated, "DIRECTIVES", {**accelerated.DIRECTIVES, "boundscheck": False})
    assert accelerated.built_path("mappings.engine.lookup", source) != first


def test_modules_outside_the_list_are_left_to_python() -> None:
    assert accelerated._FINDER.find_spec("mappings.engine.template_rewrites") is None  # runs once per version
    assert accelerated._FINDER.find_spec("json") is None


@needs_build
@pytest.mark.parametrize(
    ("template", "payload", "source_format"),
    [
        ("{{ fhir_id.func_globals }}", "{}", "json"),
        ("{{ fhir_id.func_code }}", "{}", "json"),
        ("{{ msg.all.func_globals }}", "MSH|^~\\&|A\rPID|1", "hl7v2"),
        ("{{ msg.all.func_globals }}", '<a xmlns="urn:hl7-org:v3"><b/></a>', "xml"),
    ],
)
def test_compiled_functions_keep_their_globals_out_of_templates(template, payload, source_format) -> None:
    result = run_mapping(compile_mapping(template, source_format=source_format), payload)
    assert result.output is None
    assert [error.code for error in result.errors] in (["FS-RND-003"], ["FS-RND-006"])
    assert "__builtins__" not in str(result.issues)


@needs_build
def test_the_sandbox_refuses_the_func_attributes_of_compiled_functions_and_methods() -> None:
    env = build_environment({}, strict=True, max_value_bytes=10**6, lookup_tables={}, timezone="UTC")
    assert accelerated.is_function(fhir_id) and not isinstance(fhir_id, type(run_examples))
    message = parse_hl7v2("MSH|^~\\&|A\rPID|1")
    for obj in (fhir_id, message.all):
        assert not env.is_safe_attribute(obj, "func_globals", obj.func_globals)
    assert env.is_safe_attribute(message, "PID", None)  # the rule is about callables' func_* names only
