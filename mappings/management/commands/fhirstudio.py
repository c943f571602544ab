"""`python manage.py fhirstudio …`: the mapping engine for people and scripts.

fhirstudio render <mapping> <input-file> [--source-format F] [--no-validate] [--draft | --version N]
    FHIR JSON on stdout, exit 0. On any error: an OperationOutcome on stdout, exit 2 — never a traceback.
fhirstudio test [<mapping>] [--version N] [--corpus]
    Runs the mapping's sample cases (every example's when none is named); prints `N passed, N failed`.
    --corpus also renders and validates every matching file of the shared corpus.
fhirstudio demo
    The demo admin user and the demo content (every example imported into the studio, published as version 1).
fhirstudio token <username>
    Prints the user's API token (created if missing), for `Authorization: Token …`; exit 2 for an unknown user.
fhirstudio smart-client <facade> --scope SCOPE [--scope SCOPE ...] --out DIR [--alg ES384|RS384] [--name NAME]
    Registers a SMART Backend Services client app for a protected facade with a fresh key pair: prints its client id
    and token URL, writes the private key (private-key.pem, mode 0600) and the public JWKS (jwks.json) into DIR.
fhirstudio convert <file> --to json|xml|ttl [--from json|xml|ttl] [--base URL] [--compact]
    A FHIR resource in another format on stdout (the input's format is detected: `{` JSON, `<` XML, else Turtle).
    Exit 1 with the reason on stderr when the file cannot be read as a FHIR R4 resource.

<mapping> is a mapping stored in the studio (its slug) or, when no stored mapping has that slug, an example folder
under examples/ (or a path to one). A stored mapping renders its latest published version, or its draft when it has
none (--draft forces the draft, --version N a version); its tests run the stored samples against the draft (or
--version N) and are recorded as a test run, like the API's.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from mappings.actions import do_issue_api_token, do_run_tests
from mappings.actions.connections import do_test_connection
from mappings.compiling import DRAFT, find_version, resolve_mapping
from mappings.conf import engine_limits
from mappings.demo import load_demo, load_demo_store_facade
from mappings.engine import SOURCE_FORMATS, CompiledMapping, ErrorCode, MappingError, operation_outcome, run_mapping
from mappings.engine.formats import FORMATS, detect_format, dumps, serialize
from mappings.engine.formats import parse as parse_resource
from mappings.errors import FhirError, RequestCode, StudioError
from mappings.examples import Example, find_example, list_examples
from mappings.jobs.messages import purge_messages_direct
from mappings.models import Connection, Facade, Mapping, TestRun
from mappings.samples import mask, run_case
from mappings.security.clients import create_smart_client

EXIT_FAILED = 2


class Command(BaseCommand):
    help = "Render payloads with a mapping and run mappings' sample tests."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        render = commands.add_parser("render", help="Map one input file to FHIR JSON.")
        render.add_argument(
            "mapping", help="A stored mapping's slug, else an example folder name under examples/ or a path to one."
        )
        render.add_argument("input_file", help="The source payload ('-' reads standard input).")
        render.add_argument("--source-format", choices=SOURCE_FORMATS, help="Override the mapping's source format.")
        render.add_argument("--no-validate", action="store_true", help="Skip FHIR validation.")
        render.add_argument("--compact", action="store_true", help="Print JSON on one line.")
        which = render.add_mutually_exclusive_group()
        which.add_argument("--draft", action="store_true", help="A stored mapping's draft, not its latest version.")
        which.add_argument("--version", type=int, metavar="N", help="A stored mapping's published version N.")
        test = commands.add_parser("test", help="Run sample cases; prints 'N passed, N failed'.")
        test.add_argument("mapping", nargs="?", help="One mapping (default: every example).")
        test.add_argument(
            "--version", type=int, metavar="N", help="Test a stored mapping's version N instead of its draft."
        )
        test.add_argument(
            "--corpus", action="store_true", help="Also render+validate matching corpus files (example folders)."
        )
        commands.add_parser("demo", help="Load the demo content (idempotent): the admin user and demo mappings.")
        token = commands.add_parser("token", help="Print a user's API token (created if missing).")
        token.add_argument("username")
        smart = commands.add_parser("smart-client", help="Register a SMART backend client app with a new key pair.")
        smart.add_argument("facade", help="The facade's slug (a protected one, e.g. demo-smart).")
        smart.add_argument("--scope", action="append", required=True, help="An allowed scope, e.g. system/*.rs.")
        smart.add_argument("--out", required=True, type=Path, help="Folder for private-key.pem and jwks.json.")
        smart.add_argument("--alg", choices=("ES384", "RS384"), default="ES384", help="The key's algorithm.")
        smart.add_argument("--name", default="", help="The client app's name (default: smart-client for <facade>).")
        check = commands.add_parser("connection-test", help="Test a connection to a FHIR server (reads its metadata).")
        check.add_argument("name", help="The connection's name.")
        purge = commands.add_parser("purge-messages", help="Delete message log rows older than the retention.")
        purge.add_argument("--days", type=int, help="Days to keep (default: FHIR_STUDIO_MESSAGE_RETENTION_DAYS).")
        convert = commands.add_parser("convert", help="Print a FHIR resource in JSON, XML or RDF Turtle.")
        convert.add_argument("file", help="A FHIR resource in JSON, XML or Turtle ('-' reads standard input).")
        convert.add_argument("--to", required=True, choices=FORMATS, help="The format to print.")
        convert.add_argument("--from", dest="source", choices=FORMATS, help="The input's format (default: detected).")
        convert.add_argument("--base", help="Turtle: the FHIR base URL naming the resource and its references.")
        convert.add_argument("--compact", action="store_true", help="JSON and XML on one line.")
        test.add_argument(
            "--write-expected",
            action="store_true",
            help="Write each example sample's output (volatile fields masked) to expected/<case>.json; review it!",
        )

    def handle(self, *args, **options) -> None:
        if options["command"] == "render":
            sys.exit(self.render(options))
        if options["command"] == "demo":
            self.demo()
            return
        if options["command"] == "token":
            sys.exit(self.token(options["username"]))
        if options["command"] == "convert":
            sys.exit(self.convert(options))
        if options["command"] == "purge-messages":
            if options["days"] is not None and options["days"] < 0:
                raise CommandError("--days is a number of days to keep: 0 or more.")
            self.stdout.write(f"{purge_messages_direct(options['days'])} message log rows deleted.")
            return
        if options["command"] == "smart-client":
            sys.exit(self.smart_client(options))
        if options["command"] == "connection-test":
            sys.exit(self.connection_test(options["name"]))
        sys.exit(self.test(options))

    def demo(self) -> None:
        """The demo admin user, so a newcomer can sign in (its password comes from FHIR_STUDIO_DEMO_PASSWORD, or is
        generated once into the var directory: fhirstudio/settings.py), and
        the demo mappings, imported as that user (or as nobody when there is no such user)."""
        password = settings.FHIR_STUDIO["DEMO_PASSWORD"]
        user_model = get_user_model()
        if not password:
            self.stdout.write("FHIR_STUDIO_DEMO_PASSWORD is empty: no demo user created.")
        elif not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.org", password)
            where = "FHIR_STUDIO_DEMO_PASSWORD" if settings.DEMO_PASSWORD_SET else settings.VAR_DIR / "demo-password"
            self.stdout.write(f"Created the demo user 'admin' (password in {where}).")
        summary = load_demo(user_model.objects.filter(username="admin").first())
        for line in summary.lines():
            self.stdout.write(line)
        if load_demo_store_facade(user_model.objects.filter(username="admin").first()) is not None:
            self.stdout.write("Created the open facade demo-store over an empty FHIR store: /fhir/demo-store/.")

    def token(self, username: str) -> int:
        try:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                self.stdout.write(f"No user '{username}'.")
                return EXIT_FAILED
            token = do_issue_api_token(user, acting_user=None)  # audited (auth.api_token_issued), never its key
        except DatabaseError as exc:
            self.stdout.write(f"The studio database is not usable ({exc}); run `manage.py migrate` first.")
            return EXIT_FAILED
        self.stdout.write(token.key)
        return 0

    def smart_client(self, options: dict) -> int:
        facade = Facade.objects.filter(slug=options["facade"]).first()
        if facade is None:
            self.stderr.write(f"No facade '{options['facade']}'.")
            return EXIT_FAILED
        scopes = [part for text in options["scope"] for part in text.split()]
        try:
            made = create_smart_client(
                facade, scopes=scopes, out_dir=options["out"], algorithm=options["alg"], name=options["name"]
            )
        except (StudioError, OSError) as error:
            self.stderr.write(getattr(error, "message", None) or str(error))
            return EXIT_FAILED
        self.stdout.write(f"client id:   {made.client.client_id}")
        self.stdout.write(f"token URL:   {made.token_url}")
        self.stdout.write(f"private key: {made.private_key}")
        self.stdout.write(f"JWKS:        {made.jwks}")
        self.stdout.write(f"scopes:      {' '.join(made.client.scopes)}")
        if facade.auth_mode == Facade.AuthMode.OPEN:
            self.stdout.write(f"note: '{facade.slug}' is open: it answers without a token.")
        return 0

    def connection_test(self, name: str) -> int:
        """The diagnosis as JSON on stdout (kept on the connection, audited); exit 0 when it is ok, 2 otherwise."""
        connection = Connection.objects.filter(name=name).first()
        if connection is None:
            self.stderr.write(f"No connection '{name}'.")
            return EXIT_FAILED
        found = do_test_connection(connection, acting_user=None)
        self._print_json(dataclasses.asdict(found))
        return 0 if found.ok else EXIT_FAILED

    def convert(self, options: dict) -> int:
        try:
            text = sys.stdin.buffer.read() if options["file"] == "-" else Path(options["file"]).read_bytes()
        except OSError as exc:
            self.stderr.write(f"Cannot read {options['file']}: {exc.strerror or exc}.")
            return 1
        try:
            resource = parse_resource(text, options["source"] or detect_format(text))
            output = serialize(resource, options["to"], pretty=not options["compact"], base=options["base"])
        except MappingError as error:
            self.stderr.write(f"{options['file']}: {error.message} ({error.code})")
            return 1
        self.stdout.write(output.rstrip("\n"))
        return 0

    def _print_json(self, value: object, compact: bool = False) -> None:
        # orjson with FhirDecimals written as read: a decimal 0.70 prints as 0.70, not 0.7
        self.stdout.write(dumps(value, pretty=not compact).decode())

    def _fail(self, error: MappingError | FhirError) -> int:
        self._print_json(operation_outcome([error]))
        return EXIT_FAILED

    def _example(self, name: str) -> Example | None:
        return find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], name)

    def _stored(self, name: str) -> Mapping | None:
        """The stored mapping with this slug. A path, or a database that cannot answer (not migrated, unreachable),
        means none: the examples folder still works without a studio database."""
        if "/" in name or Path(name).is_dir():
            return None
        try:
            return Mapping.objects.select_related("draft", "latest_version").filter(slug=name).first()
        except DatabaseError:
            return None

    def _compile_for_render(self, options: dict) -> CompiledMapping:
        """A stored mapping through the studio's one resolver (--version N, else --draft, else the latest published
        version, else the draft); otherwise an example folder, by name or path, which has no versions."""
        name = options["mapping"]
        if self._stored(name) is not None:
            which = options["version"] if options["version"] is not None else (DRAFT if options["draft"] else None)
            return resolve_mapping(name, which).compiled
        example = self._example(name)
        if example is None:
            raise FhirError(404, RequestCode.NOT_FOUND, f"No mapping '{name}'.")
        if options["version"] is not None:
            raise FhirError(
                404,
                RequestCode.NOT_FOUND,
                f"'{name}' is an example folder, not a stored mapping: it has no version {options['version']}.",
            )
        return example.compile(engine_limits())

    def render(self, options: dict) -> int:
        try:
            compiled = self._compile_for_render(options)
            path = options["input_file"]
            payload = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except StudioError as error:  # an unknown stored version
            return self._fail(FhirError(404, RequestCode.NOT_FOUND, error.message))
        except (MappingError, FhirError) as error:
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
        # --corpus and --write-expected read and write example folders, so they never pick a stored mapping.
        folder_only = options["corpus"] or options["write_expected"]
        mapping = self._stored(options["mapping"]) if options["mapping"] and not folder_only else None
        if mapping is not None:
            return self._test_stored(mapping, options["version"])
        if options["version"] is not None:
            self.stdout.write(f"No stored mapping '{options['mapping']}': --version needs one.")
            return EXIT_FAILED
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

    def _test_stored(self, mapping: Mapping, number: int | None) -> int:
        """The stored samples against the draft (or version N), recorded as a manual test run by nobody."""
        try:
            version = find_version(mapping, number if number is not None else DRAFT)
        except StudioError as error:
            self.stdout.write(error.message)
            return EXIT_FAILED
        run = do_run_tests(mapping, acting_user=None, version=version, trigger=TestRun.Trigger.MANUAL)
        target = f"v{version.number}" if version else f"draft r{run.draft_revision}"
        for result in run.results:
            if result["passed"]:
                total = result["timings"].get("total", 0.0)
                self.stdout.write(f"ok   {mapping.slug} {target} {result['case']} ({total:.1f} ms)")
            else:
                self.stdout.write(f"FAIL {mapping.slug} {target} {result['case']}")
                for problem in result["problems"]:
                    self.stdout.write("     " + problem.replace("\n", "\n     "))
        self.stdout.write(f"{run.passed} passed, {run.failed} failed")
        return 0 if run.failed == 0 else 1

    def _write_expected(self, example: Example, compiled: CompiledMapping) -> None:
        (example.path / "expected").mkdir(exist_ok=True)
        for case in example.cases:
            outcome = run_case(compiled, case.name, case.payload())
            if outcome.result.output is not None:
                path = example.path / "expected" / f"{case.name}.json"
                path.write_text(json.dumps(mask(outcome.result.output), indent=2, ensure_ascii=False) + "\n")
