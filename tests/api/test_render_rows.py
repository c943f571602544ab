"""What a render reads of its mapping, draft and version is written out in SQL (mappings.access.loaded_row): each
row must come back as the ORM would give it, typed the same, with every other field still loadable."""

import pytest

from mappings.access import access_draft_to_run, access_version_to_run, loaded_row
from mappings.models import Mapping, MappingVersion

pytestmark = pytest.mark.django_db


def test_a_draft_render_reads_its_mapping_and_draft_as_the_orm_does(users, json_patient) -> None:
    Mapping.objects.filter(pk=json_patient.pk).update(strict=True, source_options={"delimiter": ";"})
    orm = Mapping.objects.select_related("draft").get(pk=json_patient.pk)
    mapping = access_draft_to_run(users["viewer"], "json-patient")
    read = ("id", "slug", "source_format", "source_options", "timezone", "strict")
    assert [getattr(mapping, name) for name in read] == [getattr(orm, name) for name in read]
    assert mapping.strict is True and mapping.source_options == {"delimiter": ";"}
    assert (mapping.draft.template, mapping.draft.table_names) == (orm.draft.template, orm.draft.table_names)
    assert isinstance(mapping.draft.table_names, list) and mapping.draft.table_names
    assert mapping.get_deferred_fields() >= {"title", "updated_at"}
    assert mapping.title == orm.title and mapping.updated_at == orm.updated_at  # loaded when read, typed


def test_a_version_render_reads_the_version_it_names(api, users, json_patient) -> None:
    for message in ("first", "second"):
        published = api["author"].post("/api/mappings/json-patient/versions/", {"message": message}, format="json")
        assert published.status_code == 201, published.content
    version = access_version_to_run(users["viewer"], "json-patient", 2)
    orm = MappingVersion.objects.get(mapping=json_patient, number=2)
    assert (version.pk, version.mapping_id, version.number, version.content_hash) == (
        orm.pk,
        orm.mapping_id,
        2,
        orm.content_hash,
    )
    assert "template" in version.get_deferred_fields()
    assert version.template == orm.template and version.message == "second"


def test_a_row_selected_out_of_the_models_field_order_is_refused(users, json_patient) -> None:
    with pytest.raises(ValueError, match="field order"):
        loaded_row(Mapping, ("slug", "id"), "SELECT slug, id FROM mappings_mapping WHERE slug = %s", ["json-patient"])
