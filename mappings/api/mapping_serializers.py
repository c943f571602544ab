"""Request and response shapes of the mapping endpoints (views in mappings/api/mappings.py).

Request serializers only validate: none of them has a writing create()/update(); the view hands validated_data to an
action. Response serializers only read attributes, so a view's queries are decided by its queryset, not here."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from mappings.engine import SOURCE_FORMATS
from mappings.models import Draft, Mapping, MappingVersion, SampleCase, TestRun
from mappings.samples import assertion_syntax_error

MAX_DB_INT = 2**31 - 1  # PositiveIntegerField on PostgreSQL: a larger number can only be "not found"


SURROGATE = re.compile("[\ud800-\udfff]")


class ProhibitSurrogates(ProhibitSurrogateCharactersValidator):
    """DRF's check, with its message and code, by one regular expression search instead of a Python generator over
    every character: a render's payload is kilobytes long, and that loop cost 0.3 ms a request."""

    def __call__(self, value: object) -> None:
        found = SURROGATE.search(str(value))
        if found:
            raise serializers.ValidationError(self.message.format(code_point=ord(found.group())), code=self.code)


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would turn 12 into "12" and hide a client's mistake."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.validators = [
            ProhibitSurrogates() if type(check) is ProhibitSurrogateCharactersValidator else check
            for check in self.validators
        ]

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictSlugField(serializers.SlugField):
    """A slug given as a string: SlugField would take the number 0 as the slug "0" (schemathesis found it)."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes", "1" or "on": a JSON body has real booleans."""

    def to_internal_value(self, data: object) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class VersionNumberField(serializers.IntegerField):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(min_value=1, max_value=MAX_DB_INT, **kwargs)

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool):  # JSON true is not version 1
            self.fail("invalid")
        return super().to_internal_value(data)


def nul_paths(value: object, path: str = "") -> list[str]:
    """Where `value` holds a NUL character. PostgreSQL stores none in text or jsonb and fails the whole statement,
    so a NUL is bad input (400), never a 500."""
    if isinstance(value, str):
        return [path or "value"] if "\x00" in value else []
    if isinstance(value, dict):
        found = [path or "key"] if any("\x00" in str(key) for key in value) else []
        return found + [hit for key, item in value.items() for hit in nul_paths(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in nul_paths(item, f"{path}[{index}]")]
    return []


def storable_json(value: object) -> object:
    """PostgreSQL's jsonb cannot hold U+0000 anywhere: refuse it here (400) rather than fail on saving (500)."""
    if nul_paths(value):
        raise serializers.ValidationError("Null characters are not allowed.")
    return value


class EngineErrorOut(serializers.Serializer):
    """One engine error or warning (MappingError.as_dict())."""

    code = serializers.CharField(help_text="FS-<stage>-<nnn>")
    stage = serializers.ChoiceField(choices=["source", "template", "render", "postprocess", "validate", "limit"])
    severity = serializers.ChoiceField(choices=["fatal", "error", "warning", "information"])
    message = serializers.CharField()
    template = serializers.CharField(allow_null=True, help_text="template.j2 or a snippet name")
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)
    expression = serializers.ListField(child=serializers.CharField(), help_text="FHIRPath of the offending element")


# --- mappings -------------------------------------------------------------------------------------------------------


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise serializers.ValidationError(f"'{value}' is not an IANA time zone (e.g. Europe/Berlin).") from exc
    return value


class MappingQuery(serializers.Serializer):
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS, required=False, help_text="Only this format")
    search = StrictCharField(
        required=False, max_length=200, help_text="Part of the slug, title or description (any case)"
    )
    status = serializers.ChoiceField(
        choices=["changed", "published", "never_published"],
        required=False,
        help_text="changed: the draft's template differs from the latest version's; published: it does not; "
        "never_published: no version yet",
    )
    last_test = serializers.ChoiceField(
        choices=["passed", "failed", "none"], required=False, help_text="The latest test run's result"
    )
    has_version = serializers.BooleanField(
        required=False,
        default=None,
        allow_null=True,
        help_text="true: only mappings with a published version (what batches and bindings run); false: only those "
        "without",
    )


class MappingUpdateRequest(serializers.Serializer):
    title = StrictCharField(max_length=200, required=False)
    description = StrictCharField(allow_blank=True, required=False)
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS, required=False)
    source_options = serializers.DictField(
        required=False,
        validators=[storable_json],
        help_text='Source parser options, e.g. {"delimiter": ";", "encoding": "latin-1"}',
    )
    output_kind = StrictCharField(max_length=60, required=False, help_text="Resource type, or Bundle")
    timezone = StrictCharField(max_length=60, required=False, validators=[_check_timezone])
    strict = StrictBooleanField(required=False, help_text="Undefined names are errors, not empty")


class MappingCreateRequest(MappingUpdateRequest):
    slug = StrictSlugField(max_length=100)
    title = StrictCharField(max_length=200)
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS)
    template = StrictCharField(
        allow_blank=True, trim_whitespace=False, required=False, help_text="The first draft's template text"
    )
    starter = StrictBooleanField(
        required=False,
        default=False,
        help_text="Start the draft from the source format's starter template (see /api/starters/), with its "
        "sample saved as `starter`; ignored when `template` is given",
    )


class TestRunSummaryOut(serializers.Serializer):
    id = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class MappingOut(serializers.ModelSerializer):
    """A mapping with its status: serializes rows of `Mapping.objects.with_status()`, whose annotations these are."""

    owner = serializers.CharField(source="owner_username", allow_null=True)
    draft_revision = serializers.IntegerField()
    latest_version = serializers.IntegerField(
        source="latest_version_number", allow_null=True, help_text="The newest published version's number"
    )
    last_test_run = serializers.SerializerMethodField()
    draft_changed = serializers.BooleanField(
        help_text="The draft's template differs from the latest version's (true when nothing is published). The "
        "template text is compared (in SQL, so the list stays one query): library edits made since the publish "
        "show in /impact, not here"
    )
    deployed_version = serializers.IntegerField(
        allow_null=True,
        help_text="The version the most recently deployed live facade binding of this mapping serves (null: none)",
    )

    class Meta:
        model = Mapping
        fields = [
            "slug",
            "title",
            "description",
            "source_format",
            "source_options",
            "output_kind",
            "timezone",
            "strict",
            "owner",
            "created_at",
            "updated_at",
            "draft_revision",
            "latest_version",
            "last_test_run",
            "draft_changed",
            "deployed_version",
        ]

    @extend_schema_field(TestRunSummaryOut(allow_null=True))
    def get_last_test_run(self, mapping: Mapping) -> dict | None:
        if mapping.last_run_id is None:
            return None
        run = {
            "id": mapping.last_run_id,
            "passed": mapping.last_run_passed,
            "failed": mapping.last_run_failed,
            "created_at": mapping.last_run_created_at,
        }
        return TestRunSummaryOut(run).data


# --- drafts ---------------------------------------------------------------------------------------------------------


class DraftRequest(serializers.Serializer):
    template = StrictCharField(allow_blank=True, trim_whitespace=False)
    lookup_tables = serializers.ListField(
        child=StrictSlugField(max_length=100),
        required=False,
        max_length=200,
        help_text="Lookup tables the template uses by a name in a variable, which saving cannot find by itself",
    )


class DraftOut(serializers.ModelSerializer):
    updated_by = serializers.SerializerMethodField()
    etag = serializers.CharField(help_text="The same value as the ETag header: send it back in If-Match")

    class Meta:
        model = Draft
        fields = ["template", "revision", "snippet_names", "table_names", "updated_at", "updated_by", "etag"]

    def get_updated_by(self, draft: Draft) -> str | None:
        return draft.updated_by.username if draft.updated_by_id else None


class TestRunBriefOut(serializers.Serializer):
    id = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()


class SavedDraftOut(DraftOut):
    test_run = serializers.SerializerMethodField(help_text="The test run the save triggered")

    class Meta(DraftOut.Meta):
        fields = [*DraftOut.Meta.fields, "test_run"]

    @extend_schema_field(TestRunBriefOut)
    def get_test_run(self, draft: Draft) -> dict:
        run = self.context["test_run"]
        return {"id": run.id, "passed": run.passed, "failed": run.failed}


# --- test runs ------------------------------------------------------------------------------------------------------


class CaseResultOut(serializers.Serializer):
    case = serializers.CharField(help_text="The sample's name")
    passed = serializers.BooleanField()
    problems = serializers.ListField(
        child=serializers.CharField(), help_text="Engine errors, the output diff and failed assertions, as text"
    )
    errors = EngineErrorOut(many=True)
    issues = serializers.JSONField(allow_null=True, help_text="The run's OperationOutcome")
    timings = serializers.DictField(child=serializers.FloatField(), help_text="Milliseconds per stage")


class TestRunOut(serializers.ModelSerializer):
    """A recorded run of the samples. The list leaves out `results`; one run (and a new one) has them."""

    __test__ = False  # not a pytest test class, despite the name

    version = serializers.SerializerMethodField(help_text="The version's number; null: the draft at draft_revision")
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = TestRun
        fields = [
            "id",
            "version",
            "draft_revision",
            "trigger",
            "passed",
            "failed",
            "duration_ms",
            "created_at",
            "created_by",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_version(self, run: TestRun) -> int | None:
        return run.version.number if run.version_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_created_by(self, run: TestRun) -> str | None:
        return run.created_by.username if run.created_by_id else None


class TestRunDetailOut(TestRunOut):
    results = serializers.SerializerMethodField()

    class Meta(TestRunOut.Meta):
        fields = [*TestRunOut.Meta.fields, "results"]

    @extend_schema_field(CaseResultOut(many=True))
    def get_results(self, run: TestRun) -> list[dict]:
        # A case that could not run (the template did not compile) was stored without errors, issues or timings.
        return [
            {
                "case": result.get("case"),
                "passed": bool(result.get("passed")),
                "problems": result.get("problems") or [],
                "errors": result.get("errors") or [],
                "issues": result.get("issues"),
                "timings": result.get("timings") or {},
            }
            for result in run.results
        ]


class TestRunRowOut(TestRunOut):
    """A row of the test-run list, for the schema: `results` comes only with results=true (the list writes rows with
    TestRunOut or TestRunDetailOut), so it is not required."""

    __test__ = False

    results = CaseResultOut(many=True, required=False, help_text="Only with results=true")

    class Meta(TestRunOut.Meta):
        fields = [*TestRunOut.Meta.fields, "results"]


class TestRunQuery(serializers.Serializer):
    __test__ = False

    results = serializers.BooleanField(default=False, help_text="Include each run's per-case results")


class TestRunRequest(serializers.Serializer):
    __test__ = False

    version = VersionNumberField(required=False, allow_null=True, help_text="A version's number; omitted: the draft")


# --- versions -------------------------------------------------------------------------------------------------------


class PublishRequest(serializers.Serializer):
    message = StrictCharField(max_length=2000, help_text="What changed and why")


class LastRunOut(TestRunSummaryOut):
    trigger = serializers.CharField(help_text="publish, deploy or manual")


class VersionOut(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    test_run = serializers.SerializerMethodField(help_text="The samples' run recorded when it was published")
    last_test_run = serializers.SerializerMethodField(
        help_text="The newest run of the samples against this version (at publish, at a deploy or by hand): what "
        "deploying it would find now, as far as the studio knows"
    )

    class Meta:
        model = MappingVersion
        fields = ["number", "message", "author", "created_at", "content_hash", "test_run", "last_test_run"]

    @extend_schema_field(LastRunOut(allow_null=True))
    def get_last_test_run(self, version: MappingVersion) -> dict | None:
        if hasattr(version, "last_run_id"):  # annotated by the versions list (one query for the page)
            if version.last_run_id is None:
                return None
            return LastRunOut({key: getattr(version, f"last_run_{key}") for key in LastRunOut().fields}).data
        run = version.test_runs.order_by("-created_at", "-id").first()
        return LastRunOut(run).data if run else None

    def get_author(self, version: MappingVersion) -> str | None:
        return version.author.username if version.author_id else None

    @extend_schema_field(TestRunSummaryOut(allow_null=True))
    def get_test_run(self, version: MappingVersion) -> dict | None:
        return TestRunSummaryOut(version.test_run).data if version.test_run_id else None


class VersionDetailOut(VersionOut):
    snippets = serializers.DictField(child=serializers.CharField(), help_text="{name: text} as published")
    lookup_tables = serializers.DictField(child=serializers.JSONField(), help_text="{name: table data} as published")
    engine_settings = serializers.DictField(help_text="source_format, source_options, timezone, strict")

    class Meta(VersionOut.Meta):
        fields = [*VersionOut.Meta.fields, "template", "snippets", "lookup_tables", "engine_settings"]

    @extend_schema_field(TestRunDetailOut(allow_null=True))
    def get_test_run(self, version: MappingVersion) -> dict | None:
        return TestRunDetailOut(version.test_run).data if version.test_run_id else None


class DiffQuery(serializers.Serializer):
    against = serializers.RegexField(
        r"^(draft|[1-9][0-9]{0,9})$",
        required=False,
        error_messages={"invalid": "Give a version number or `draft`."},
    )

    def validate_against(self, value: str) -> int | str:
        if value == "draft":
            return value
        number = int(value)
        if number > MAX_DB_INT:
            raise serializers.ValidationError("Give a version number or `draft`.")
        return number


class VersionDiffOut(serializers.Serializer):
    to = serializers.CharField(help_text="vN: the version asked for")
    template = serializers.CharField(help_text="Unified diff of template.j2; empty when equal")
    snippets = serializers.DictField(child=serializers.CharField(), help_text="{name: unified diff}, changed only")
    lookup_tables = serializers.DictField(child=serializers.CharField(), help_text="{name: unified diff}, changed only")


VersionDiffOut._declared_fields["from"] = serializers.CharField(help_text="vM or draft: the other side")


# --- samples --------------------------------------------------------------------------------------------------------


class SampleUpdateRequest(serializers.Serializer):
    payload = StrictCharField(trim_whitespace=False, required=False, help_text="The source message, as text")
    source_format = serializers.ChoiceField(
        choices=SOURCE_FORMATS, allow_blank=True, required=False, help_text="Empty: the mapping's"
    )
    expected = serializers.JSONField(
        allow_null=True,
        required=False,
        validators=[storable_json],
        help_text="The expected output (an object), or null: check validity only",
    )
    ignore_paths = serializers.ListField(
        child=StrictCharField(max_length=500),
        required=False,
        help_text="Elements masked before comparing, e.g. Bundle.entry.resource.meta",
    )
    assertions = serializers.ListField(
        child=StrictCharField(max_length=2000),
        required=False,
        help_text="FHIRPath expressions that must be true on the output",
    )

    def validate_expected(self, value: object) -> dict | None:
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("The expected output is a JSON object (a resource or Bundle), or null.")
        return value

    def validate_assertions(self, value: list[str]) -> list[str]:
        """Refused on save, not when the tests run: an assertion that is not FHIRPath could never pass."""
        problems = [
            f"Assertion {number} ({expression!r}) is not FHIRPath: {error}"
            for number, expression in enumerate(value, start=1)
            if (error := assertion_syntax_error(expression))
        ]
        if problems:
            raise serializers.ValidationError(problems)
        return value


class SampleCreateRequest(SampleUpdateRequest):
    name = StrictSlugField(max_length=100)
    payload = StrictCharField(trim_whitespace=False, help_text="The source message, as text")


class SampleOut(serializers.ModelSerializer):
    class Meta:
        model = SampleCase
        fields = [
            "name",
            "payload",
            "source_format",
            "expected",
            "ignore_paths",
            "assertions",
            "created_at",
            "updated_at",
        ]


# --- render ---------------------------------------------------------------------------------------------------------


class RenderRequest(serializers.Serializer):
    payload = StrictCharField(allow_blank=True, trim_whitespace=False, help_text="The source message, as text")
    source_format = serializers.ChoiceField(
        choices=SOURCE_FORMATS, required=False, allow_blank=True, help_text="Omitted or empty: the mapping's"
    )
    version = VersionNumberField(required=False, allow_null=True, help_text="Render this published version")
    template = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        allow_null=True,
        help_text="Render this (unsaved) template text with the stored snippets and tables",
    )
    validate = StrictBooleanField(default=True, help_text="Validate the output as FHIR R4")
    locate = StrictBooleanField(
        default=True,
        help_text="Point validation issues at the template line that wrote them (one more render when there are "
        "any); the editor asks without it on each keystroke, then with it when issues came back without a line",
    )
    variables = serializers.DictField(required=False, help_text="Available to the template as `vars`")

    # Not in validate(): the `validate` field above takes that name.
    def validate_template(self, value: str | None) -> str | None:
        if value is not None and self.initial_data.get("version") is not None:
            raise serializers.ValidationError("Give a version or a template, not both.")
        return value


class FailedOutputOut(serializers.Serializer):
    text = serializers.CharField(help_text="The rendered output (at most 200,000 characters, around the error)")
    start = serializers.IntegerField(help_text="Where `text` begins in the whole output (0 unless truncated)")
    offset = serializers.IntegerField(
        allow_null=True, help_text="Where parsing failed, counted from the start of the whole output"
    )
    total_chars = serializers.IntegerField(help_text="Length of the whole output")
    truncated = serializers.BooleanField(help_text="`text` is a window of a longer output")


class RenderOut(serializers.Serializer):
    """A completed run, successful or not: a template that does not compile or a payload that does not parse is
    reported here (ok false, errors with stage and line), not as an HTTP error."""

    ok = serializers.BooleanField(help_text="No error (warnings allowed)")
    output = serializers.JSONField(allow_null=True, help_text="The FHIR resource or Bundle; null on error")
    issues = serializers.JSONField(help_text="Every error and warning as a FHIR OperationOutcome")
    errors = EngineErrorOut(many=True)
    timings = serializers.DictField(
        child=serializers.FloatField(), help_text="Milliseconds: compile, parse, render, postprocess, validate, total"
    )
    trace = serializers.DictField(help_text="source_format, rendered_bytes, resources")
    rendered = FailedOutputOut(
        allow_null=True,
        help_text="Only when the output is not JSON (FS-PST-001): the text the template wrote, to show with the error "
        "marked; null otherwise",
    )
