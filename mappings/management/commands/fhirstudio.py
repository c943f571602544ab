"""`python manage.py fhirstudio …`: the mapping engine for people and scripts.

fhirstudio render <mapping> <input-file> [--source-format F] [--no-validate]
    FHIR JSON on stdout, exit 0. On any error: an OperationOutcome on stdout, exit 2 — never a traceback.
fhirstudio test [<mapping>] [--corpus]
    Runs the mapping's sample cases (every example's when none is named); prints `N passed, N failed`.
    --corpus also renders and validates every matching file of the shared corpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from mappings.conf import engine_limits
from mappings.engine import SOURCE_FORMATS, CompiledMapping, ErrorCode, MappingError, operation_outcome, run_mapping
from mappings.examples import Example, find_example, list_examples
from mappings.samples import mask, run_case

EXIT_FAILED = 2


class Command(BaseCommand):
    help = "Render payloads with a mapping and run mappings' sample tests."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        render = commands.add_parser("render", help="Map one input file to FHIR JSON.")
        render.add_argument("mapping", help="An example folder name under examples/, or a path to one.")
        render.add_argument("input_file", help="The source payload ('-' reads standard input).")
        render.add_argument("--source-format", choices=SOURCE_FORMATS, help="Override the mapping's source format.")
        render.add_argument("--no-validate", action="store_true", help="Skip FHIR validation.")
        render.add_argument("--compact", action="store_true", help="Print JSON on one line.")
        test = commands.add_parser("test", help="Run sample cases; prints 'N passed, N failed'.")
        test.add_argument("mapping", nargs="?", help="One mapping (default: every example).")
        test.add_argument("--corpus", action="store_true", help="Also render+validate matching corpus files.")
        commands.add_parser("demo", help="Load the demo content (idempotent): the demo admin user.")
        test.add_argument(
            "--write-expected",
            action="store_true",
            help="Write each sample's output (volatile fields masked) to expected/<case>.json; review the diff!",
        )

    def handle(self, *args, **options) -> None:
        if options["command"] == "render":
            sys.exit(self.render(options))
        if options["command"] == "demo":
            self.demo()
            return
        sys.exit(self.test(options))

    def demo(self) -> None:
        """The demo admin user, so a newcomer can sign in; its password comes from FHIR_STUDIO_DEMO_PASSWORD."""
        password = settings.FHIR_STUDIO["DEMO_PASSWORD"]
        if not password:
            self.stdout.write("FHIR_STUDIO_DEMO_PASSWORD is empty: no demo user created.")
            return
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.org", password)
            self.stdout.write("Created the demo user 'admin' (password from FHIR_STUDIO_DEMO_PASSWORD).")
        examples = list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])
        self.stdout.write(f"Demo mappings available: {', '.join(example.name for example in examples)}")

    def _print_json(self, value: object, compact: bool = False) -> None:
        self.stdout.write(json.dumps(value, ensure_ascii=False, indent=None if compact else 2))

    def _fail(self, error: MappingError) -> int:
        self._print_json(operation_outcome([error]))
        return EXIT_FAILED

    def _example(self, name: str) -> Example | None:
        return find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], name)

    def render(self, options: dict) -> int:
        try:
            example = self._example(options["mapping"])
            if example is None:
                return self._fail(MappingError(ErrorCode.TPL_UNKNOWN_SNIPPET, f"No mapping '{options['mapping']}'."))
            path = options["input_file"]
            payload = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            compiled = example.compile(engine_limits())
        except MappingError as error:
            return self._fail(error)
        except OSError as exc:
            return self._fail(
                MappingError(ErrorCode.SRC_EMPTY, f"Cannot read '{options['input_file']}': {exc.strerror}.")
            )
        result = run_mapping(
            compiled,
            payload,
            source_format=options["source_format"],
            limits=engine_limits(),
            validate=not options["no_validate"],
        )
        if not result.ok:
            self._print_json(result.issues)
            return EXIT_FAILED
        if result.errors:  # warnings only: the output is good, tell the person what was dropped
            self.stderr.write(json.dumps(result.issues, indent=2))
        self._print_json(result.output, options["compact"])
        return 0

    def test(self, options: dict) -> int:
        if options["mapping"]:
            example = self._example(options["mapping"])
            if example is None:
                self.stdout.write(f"No mapping '{options['mapping']}'.")
                return EXIT_FAILED
            examples = [example]
        else:
            examples = list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])
        passed = failed = 0
        for example in examples:
            try:
                compiled = example.compile(engine_limits())
            except MappingError as error:
                self.stdout.write(f"FAIL {example.name}: {error.code} at {error.where()}: {error.message}")
                failed += 1
                continue
            if options["write_expected"]:
                self._write_expected(example, compiled)
            cases = [(case.name, case.payload(), case.expected(), case.assertions) for case in example.cases]
            if options["corpus"]:
                corpus_dir = settings.FHIR_STUDIO["CORPUS_DIR"]
                cases += [
                    (f"corpus:{path.name}", path.read_bytes(), None, ()) for path in example.corpus_files(corpus_dir)
                ]
            for name, payload, expected, assertions in cases:
                outcome = run_case(compiled, name, payload, expected=expected, assertions=assertions)
                if outcome.passed:
                    passed += 1
                    self.stdout.write(f"ok   {example.name} {name} ({outcome.result.timings['total']:.1f} ms)")
                else:
                    failed += 1
                    self.stdout.write(f"FAIL {example.name} {name}")
                    for problem in outcome.problems:
                        self.stdout.write("     " + problem.replace("\n", "\n     "))
        self.stdout.write(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1

    def _write_expected(self, example: Example, compiled: CompiledMapping) -> None:
        (example.path / "expected").mkdir(exist_ok=True)
        for case in example.cases:
            outcome = run_case(compiled, case.name, case.payload())
            if outcome.result.output is not None:
                path = example.path / "expected" / f"{case.name}.json"
                path.write_text(json.dumps(mask(outcome.result.output), indent=2, ensure_ascii=False) + "\n")
