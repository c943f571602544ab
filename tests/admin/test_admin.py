"""The admin console: every studio model is browsable, history is read-only, and writes go through the actions (so
they leave the same audit rows as the API)."""

import json
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from joserfc.jwk import ECKey

from mappings import actions, models
from mappings.actions.connections import do_create_connection
from mappings.demo import load_demo
from mappings.security.actions import do_register_client_app

ROOT = Path(__file__).resolve().parents[2]
STUDIO_MODELS = [model for model in admin.site._registry if model._meta.app_label == "mappings"]
READ_ONLY = [
    models.Draft,
    models.MappingVersion,
    models.SnippetVersion,
    models.LookupTableVersion,
    models.TestRun,
    models.AuditEvent,
    models.ExportJob,
    models.BatchJob,
    models.ProcessedMessage,
    models.PatientGroup,
    models.ProfilePackage,
    models.ProfileDefinition,
]
NO_ADD = [*READ_ONLY, models.Deployment]  # a deploy runs the version's samples first: the studio and the API do it


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.org", "pw-root")


@pytest.fixture
def console(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def url(model, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def form_errors(response) -> object:
    context = response.context or {}
    return context.get("errors") or response.status_code


def inline_forms(*prefixes: str) -> dict[str, str]:
    """The management forms of a change page's (read-only, empty) inlines, which every POST must carry."""
    counts = {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000"}
    return {f"{prefix}-{key}": value for prefix in prefixes for key, value in counts.items()}


MAPPING_INLINES = inline_forms("draft", "versions", "samples")


def messages_of(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def test_it_registers_every_studio_model() -> None:
    names = {model.__name__ for model in STUDIO_MODELS}
    assert names == {
        "AuditEvent",
        "BatchJob",
        "ClientApp",
        "Connection",
        "DataSource",
        "Deployment",
        "Draft",
        "ExportJob",
        "Facade",
        "LookupTable",
        "LookupTableVersion",
        "Mapping",
        "MappingVersion",
        "PatientGroup",
        "ProcessedMessage",
        "ProfileDefinition",
        "ProfilePackage",
        "ResourceBinding",
        "SampleCase",
        "Snippet",
        "SnippetVersion",
        "TestRun",
    }


def test_it_renders_every_changelist_and_change_page_on_the_demo_data(console, superuser) -> None:
    load_demo(superuser)
    make_jobs()
    # The demo registers no client app (a client's key pair is made on the user's machine: fhirstudio smart-client).
    public = ECKey.generate_key("P-384").as_dict(private=False, alg="ES384", use="sig")
    do_register_client_app(
        acting_user=superuser, name="reporting", scopes=["system/*.rs"], facades=[], jwks={"keys": [public]}
    )
    # Nor a connection (it names another FHIR server; the connector tests make their own).
    do_create_connection(acting_user=superuser, name="partner", base_url="https://fhir.partner.example/r4")
    assert console.get(reverse("admin:index")).status_code == 200
    for model in STUDIO_MODELS:
        obj = model.objects.order_by("pk").first()
        assert obj is not None, f"the demo data has no {model.__name__}"
        for page in (url(model, "changelist"), url(model, "changelist") + "?q=a", url(model, "change", obj.pk)):
            response = console.get(page)
            assert response.status_code == 200, f"{page}: {response.status_code}"
        if model not in NO_ADD:
            assert console.get(url(model, "add")).status_code == 200


def test_it_shows_the_useful_columns_of_a_mapping(console, superuser) -> None:
    load_demo(superuser)
    page = console.get(url(models.Mapping, "changelist")).content.decode()
    assert "hl7v2-adt-a01" in page
    assert "v1" in page
    assert "4 passed, 0 failed" in page  # the publish test run of the ADT mapping


def test_it_filters_mappings_by_source_format(console, json_patient) -> None:
    page = console.get(url(models.Mapping, "changelist") + "?source_format__exact=hl7v2").content.decode()
    assert "json-patient" not in page.split('id="result_list"')[-1]
    page = console.get(url(models.Mapping, "changelist") + "?source_format__exact=json").content.decode()
    assert "json-patient" in page


def make_jobs() -> None:
    """An export and a batch with a chunk each, as clients and analysts leave them, and an IG package with one
    definition (the demo data has none)."""
    facade = actions.do_create_facade(acting_user=None, slug="jobs", title="Jobs")
    models.PatientGroup.objects.get_or_create(facade=facade, group_id="g1", name="G1", patient_ids=["p1"])
    job = models.ExportJob.objects.create(
        facade=facade, level="system", request="http://x/fhir/jobs/$export", transaction_time=timezone.now()
    )
    models.ExportChunk.objects.create(job=job, resource_type="Patient", number=1)
    batch = models.BatchJob.objects.create(version=models.MappingVersion.objects.order_by("pk").first(), total=1)
    models.BatchChunk.objects.create(batch=batch, first_seq=0, last_seq=0)
    models.ProcessedMessage.objects.create(  # a failed message, as the log keeps one
        channel="batch", batch_id=batch.pk, mapping_slug="jobs", status="failed", error_code="FS-RND-001",
        outcome={"resourceType": "OperationOutcome", "issue": []}, payload="MSH|^~\\&|<script>|\rPID|1||M-1\r",
    )  # fmt: skip
    package = models.ProfilePackage.objects.create(name="example.ig", version="1.0.0")  # uploads go through the API
    models.ProfileDefinition.objects.create(
        resource_type="StructureDefinition", url="urn:example:profile", type="Patient", content={}, package=package
    )


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model.__name__)
def test_it_refuses_to_add_change_or_delete_history(model, console, superuser, json_patient) -> None:
    actions.do_publish_version(json_patient, acting_user=superuser, message="v1")
    make_jobs()
    obj = model.objects.order_by("pk").first()
    model_admin = admin.site._registry[model]
    request = console.get(url(model, "changelist")).wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, obj)
    assert not model_admin.has_delete_permission(request, obj)
    assert console.get(url(model, "add")).status_code == 403
    assert console.post(url(model, "change", obj.pk), {}).status_code == 403
    assert console.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_it_runs_a_mappings_tests_from_the_admin_action(console, superuser, json_patient) -> None:
    response = console.post(
        url(models.Mapping, "changelist"),
        {"action": "run_tests", admin.helpers.ACTION_CHECKBOX_NAME: [json_patient.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run = models.TestRun.objects.get(mapping=json_patient, trigger="manual")
    assert (run.passed, run.failed, run.created_by) == (1, 0, superuser)
    assert "json-patient: 1 passed, 0 failed" in messages_of(response)
    assert models.AuditEvent.objects.filter(action="tests.run", actor=superuser).exists()


def test_it_creates_a_mapping_through_the_action(console, superuser) -> None:
    response = console.post(
        url(models.Mapping, "add"),
        {
            "slug": "from-admin",
            "title": "Made in the console",
            "description": "",
            "source_format": "json",
            "source_options": "{}",
            "output_kind": "Patient",
            "timezone": "UTC",
            **MAPPING_INLINES,
        },
    )
    assert response.status_code == 302, form_errors(response)
    mapping = models.Mapping.objects.get(slug="from-admin")
    assert (mapping.owner, mapping.draft.revision) == (superuser, 1)  # the action made the draft too
    event = models.AuditEvent.objects.get(action="mapping.created", mapping_slug="from-admin")
    assert event.actor == superuser


def test_it_updates_and_deletes_a_mapping_through_the_actions(console, superuser, json_patient) -> None:
    change = url(models.Mapping, "change", json_patient.pk)
    form = {
        "title": "Renamed",
        "description": "",
        "source_format": "json",
        "source_options": "{}",
        "output_kind": "Patient",
        "timezone": "UTC",
        **MAPPING_INLINES,
    }
    response = console.post(change, form)
    assert response.status_code == 302, form_errors(response)
    json_patient.refresh_from_db()
    assert json_patient.title == "Renamed"
    updated = models.AuditEvent.objects.get(action="mapping.updated", mapping_slug="json-patient")
    assert (updated.actor, updated.after) == (superuser, {"title": "Renamed", "output_kind": "Patient"})

    response = console.post(url(models.Mapping, "delete", json_patient.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not models.Mapping.objects.filter(slug="json-patient").exists()
    assert models.AuditEvent.objects.get(action="mapping.deleted", mapping_slug="json-patient").actor == superuser


def test_it_adds_a_sample_through_the_action(console, superuser, json_patient) -> None:
    response = console.post(
        url(models.SampleCase, "add"),
        {
            "mapping": json_patient.pk,
            "name": "from-admin",
            "source_format": "",
            "payload": '{"MRN": "9", "LastName": "Admin"}',
            "expected": "",
            "ignore_paths": "",
            "assertions": json.dumps(["Patient.name.family = 'Admin'"]),
        },
    )
    assert response.status_code == 302, form_errors(response)
    sample = models.SampleCase.objects.get(mapping=json_patient, name="from-admin")
    assert (sample.expected, sample.ignore_paths) == (None, [])
    assert models.AuditEvent.objects.get(action="sample.created", object_id=str(sample.pk)).actor == superuser


def test_it_saves_a_snippet_edit_as_a_new_revision(console, superuser, json_patient) -> None:
    snippet = models.Snippet.objects.get(name="snippets/common/datatypes.j2")
    text = snippet.text + "\n{# edited in the console #}\n"
    response = console.post(
        url(models.Snippet, "change", snippet.pk),
        {"description": "edited", "text": text, **inline_forms("versions")},
    )
    assert response.status_code == 302, form_errors(response)
    snippet.refresh_from_db()
    assert (snippet.revision, snippet.description) == (2, "edited")
    assert list(snippet.versions.values_list("revision", flat=True)) == [2, 1]
    assert models.AuditEvent.objects.get(action="snippet.updated").actor == superuser


def test_it_reports_a_refused_delete_instead_of_failing(console, json_patient) -> None:
    table = models.LookupTable.objects.get(name="administrative-gender")
    response = console.post(url(models.LookupTable, "delete", table.pk), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert any("used by the drafts of json-patient" in message for message in messages_of(response))
    assert models.LookupTable.objects.filter(pk=table.pk).exists()


def test_it_reports_a_snippet_that_does_not_compile(console) -> None:
    response = console.post(
        url(models.Snippet, "add"),
        {"name": "snippets/common/broken.j2", "description": "", "text": "{% if %}", **inline_forms("versions")},
        follow=True,
    )
    assert response.status_code == 200
    assert any("does not compile" in message for message in messages_of(response))
    assert not models.Snippet.objects.filter(name="snippets/common/broken.j2").exists()


# --- facades, sources, bindings and deployments ---------------------------------------------------------------------


def result_list(response) -> str:
    return response.content.decode().split('id="result_list"')[-1]


def test_it_lists_facades_sources_bindings_and_deployments(console, superuser) -> None:
    load_demo(superuser)
    facades = result_list(console.get(url(models.Facade, "changelist")))
    assert "demo" in facades and "Demo facade over stored HL7 v2 messages" in facades
    sources = result_list(console.get(url(models.DataSource, "changelist")))
    adt = models.DataSource.objects.get(name="hl7v2-adt-a01-messages")
    count = adt.records.count()
    assert f"{count} record{'' if count == 1 else 's'}" in sources
    assert "demo/Encounter, demo/Patient" in sources  # which bindings read it
    bindings = result_list(console.get(url(models.ResourceBinding, "changelist")))
    for resource_type in ("Patient", "Encounter", "Observation", "DiagnosticReport", "Immunization"):
        assert f"demo/{resource_type}" in bindings
    assert "hl7v2-oru-r01" in bindings
    deployments = result_list(console.get(url(models.Deployment, "changelist")))
    assert "hl7v2-vxu-v04 v1" in deployments


def test_it_counts_one_record_as_one_record(console, superuser) -> None:
    source = actions.do_create_data_source(acting_user=superuser, name="single", source_format="json")
    actions.do_upload_records(source, acting_user=superuser, records=[("r1", "{}")])
    assert "1 record<" in result_list(console.get(url(models.DataSource, "changelist")))


def test_it_creates_a_facade_and_binds_only_r4_types(console, superuser, json_patient) -> None:
    response = console.post(
        url(models.Facade, "add"),
        {"slug": "clinic", "title": "Clinic", "auth_mode": "open", "convert_templates": "{}", **BINDING_INLINES},
    )
    assert response.status_code == 302, form_errors(response)
    facade = models.Facade.objects.get(slug="clinic")
    assert models.AuditEvent.objects.get(action="facade.created", object_id=str(facade.pk)).actor == superuser
    response = console.post(
        url(models.DataSource, "add"),
        {"name": "regs", "kind": "stored", "source_format": "json", "description": "", "config": "{}"},
    )
    assert response.status_code == 302, form_errors(response)
    source = models.DataSource.objects.get(name="regs")

    add = url(models.ResourceBinding, "add")
    form = {"facade": facade.pk, "mapping": json_patient.pk, "source": source.pk}
    page = console.get(add).content.decode()
    assert '<option value="Observation">' in page and '<option value="Observaton">' not in page  # a drop-down
    typo = console.post(add, {**form, "resource_type": "Observaton"})
    assert typo.status_code == 200 and "resource_type" in typo.context["adminform"].form.errors
    response = console.post(add, {**form, "resource_type": "Patient"})
    assert response.status_code == 302, form_errors(response)
    binding = models.ResourceBinding.objects.get(facade=facade, resource_type="Patient")
    assert models.AuditEvent.objects.get(action="facade.binding_saved", object_id=str(binding.pk)).actor == superuser


BINDING_INLINES = inline_forms("bindings")


def test_it_deletes_bindings_facades_and_sources_through_the_actions(console, superuser, json_patient) -> None:
    facade = actions.do_create_facade(acting_user=superuser, slug="clinic", title="Clinic")
    source = actions.do_create_data_source(acting_user=superuser, name="regs", source_format="json")
    binding = actions.do_bind_resource(
        facade, acting_user=superuser, resource_type="Patient", mapping=json_patient, source=source
    )

    # The confirmation page already names the binding that reads the source, and offers no delete.
    refused = console.post(url(models.DataSource, "delete", source.pk), {"post": "yes"})
    assert "Cannot delete data source" in refused.content.decode() and "clinic/Patient" in refused.content.decode()
    assert models.DataSource.objects.filter(pk=source.pk).exists()
    # A bulk delete from the list reaches the action, whose refusal names it too.
    bulk = console.post(
        url(models.DataSource, "changelist"),
        {"action": "delete_selected", "post": "yes", admin.helpers.ACTION_CHECKBOX_NAME: [source.pk]},
        follow=True,
    )
    assert bulk.status_code == 200
    assert models.DataSource.objects.filter(pk=source.pk).exists()

    assert console.post(url(models.ResourceBinding, "delete", binding.pk), {"post": "yes"}).status_code == 302
    assert not models.ResourceBinding.objects.filter(pk=binding.pk).exists()
    assert models.AuditEvent.objects.get(action="facade.binding_deleted").actor == superuser
    assert console.post(url(models.DataSource, "delete", source.pk), {"post": "yes"}).status_code == 302
    assert models.AuditEvent.objects.get(action="source.deleted").before["name"] == "regs"
    assert console.post(url(models.Facade, "delete", facade.pk), {"post": "yes"}).status_code == 302
    assert not models.Facade.objects.filter(slug="clinic").exists()
    assert models.AuditEvent.objects.get(action="facade.deleted").actor == superuser


def test_it_keeps_deployments_and_source_fields_read_only(console, superuser, json_patient) -> None:
    version = actions.do_publish_version(json_patient, acting_user=superuser, message="v1")
    facade = actions.do_create_facade(acting_user=superuser, slug="clinic", title="Clinic")
    source = actions.do_create_data_source(acting_user=superuser, name="regs", source_format="json")
    binding = actions.do_bind_resource(
        facade, acting_user=superuser, resource_type="Patient", mapping=json_patient, source=source
    )
    deployment = models.Deployment.objects.create(binding=binding, version=version)
    assert console.get(url(models.Deployment, "add")).status_code == 403
    assert console.post(url(models.Deployment, "change", deployment.pk), {}).status_code == 403
    assert console.post(url(models.Deployment, "delete", deployment.pk), {"post": "yes"}).status_code == 403
    assert console.get(url(models.Deployment, "change", deployment.pk)).status_code == 200  # viewable
    edit = console.post(url(models.DataSource, "change", source.pk), {"name": "renamed", "description": "x"})
    assert edit.status_code == 403
    assert models.DataSource.objects.get(pk=source.pk).name == "regs"
