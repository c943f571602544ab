"""Demo mappings kept as folders (`examples/<name>/`), loaded for the command line, the tests and the benchmarks.

    examples/<name>/mapping.json     title, description, source_format, source_options, timezone, strict, corpus
    examples/<name>/template.j2      the root template
    examples/<name>/snippets/…       snippets only this mapping uses (override shared ones of the same name)
    examples/<name>/lookup/*.json    lookup tables only this mapping uses (also *.csv)
    examples/<name>/samples/<case>.* sample payloads; expected/<case>.json their expected output
    examples/<name>/assertions.json  {"<case>": ["FHIRPath that must be true", …]}
    examples/snippets/<source>/<role>.j2, examples/lookup/*   shared by every example

`corpus` lists glob patterns relative to the shared corpus folder (e.g. `fhir-converter/hl7v2/ADT-A01-*.hl7`): the
inputs of other people this mapping must turn into valid FHIR. Pure Python: no Django, so the benchmarks use it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mappings.engine import CompiledMapping, Limits, LookupTable, compile_mapping

SNIPPET_SUFFIXES = (".j2", ".jinja", ".jinja2")


@dataclass(frozen=True)
class SampleCase:
    name: str
    payload_path: Path
    expected_path: Path | None
    assertions: tuple[str, ...] = ()

    def payload(self) -> bytes:
        return self.payload_path.read_bytes()

    def expected(self) -> dict | None:
        return json.loads(self.expected_path.read_text()) if self.expected_path else None


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    title: str
    description: str
    source_format: str
    source_options: dict
    timezone: str
    strict: bool
    template: str
    snippets: dict[str, str]
    lookup_tables: dict[str, LookupTable]
    corpus: tuple[str, ...] = ()
    cases: tuple[SampleCase, ...] = field(default_factory=tuple)

    def compile(self, limits: Limits | None = None) -> CompiledMapping:
        return compile_mapping(
            self.template,
            name="template.j2",
            snippets=self.snippets,
            lookup_tables=self.lookup_tables,
            source_format=self.source_format,
            source_options=self.source_options,
            strict=self.strict,
            timezone=self.timezone,
            limits=limits,
        )

    def corpus_files(self, corpus_dir: Path) -> list[Path]:
        found: set[Path] = set()
        for pattern in self.corpus:
            found.update(path for path in corpus_dir.glob(pattern) if path.is_file())
        return sorted(found)


def _snippets(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        "snippets/" + path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.suffix in SNIPPET_SUFFIXES
    }


def _tables(folder: Path) -> dict[str, LookupTable]:
    tables: dict[str, LookupTable] = {}
    if not folder.is_dir():
        return tables
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            tables[path.stem] = LookupTable.from_dict(path.stem, json.loads(path.read_text()))
        elif path.suffix == ".csv":
            tables[path.stem] = LookupTable.from_csv(path.stem, path.read_text())
    return tables


def _cases(folder: Path) -> tuple[SampleCase, ...]:
    samples = folder / "samples"
    if not samples.is_dir():
        return ()
    assertions_file = folder / "assertions.json"
    assertions = json.loads(assertions_file.read_text()) if assertions_file.exists() else {}
    cases = []
    for path in sorted(samples.iterdir()):
        if not path.is_file():
            continue
        expected = folder / "expected" / f"{path.stem}.json"
        cases.append(
            SampleCase(path.stem, path, expected if expected.exists() else None, tuple(assertions.get(path.stem, ())))
        )
    return tuple(cases)


def load_example(path: Path) -> Example:
    meta = json.loads((path / "mapping.json").read_text())
    library = path.parent
    return Example(
        name=path.name,
        path=path,
        title=meta.get("title", path.name),
        description=meta.get("description", ""),
        source_format=meta["source_format"],
        source_options=meta.get("source_options", {}),
        timezone=meta.get("timezone", "UTC"),
        strict=bool(meta.get("strict", False)),
        template=(path / "template.j2").read_text(),
        snippets={**_snippets(library / "snippets"), **_snippets(path / "snippets")},
        lookup_tables={**_tables(library / "lookup"), **_tables(path / "lookup")},
        corpus=tuple(meta.get("corpus", ())),
        cases=_cases(path),
    )


def list_examples(examples_dir: Path) -> list[Example]:
    return [load_example(path) for path in sorted(examples_dir.iterdir()) if (path / "mapping.json").is_file()]


def find_example(examples_dir: Path, name: str) -> Example | None:
    path = Path(name)
    if not (path / "mapping.json").is_file():
        path = examples_dir / name
    return load_example(path) if (path / "mapping.json").is_file() else None
