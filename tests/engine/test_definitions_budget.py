"""The FHIR definitions a template's extension() checks against are read before the render's time budget starts: the
first run in a process (a fresh web or Celery worker) is not stopped for the second it takes to read them."""

from mappings.engine import Limits, compile_mapping, definitions, run_mapping

BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
# A loop after the extension() call reads the render clock (every 64th iteration), as a real template's loops do.
TEMPLATE = (
    '{%- set place = extension("' + BIRTH_PLACE + '", "Address", {"city": "Oslo"}) -%}'
    '{"resourceType": "Patient", "extension": [{{ place | tojson }}],'
    ' "name": [{% for i in range(200) %}{% if loop.first %}{"text": "Kari"}{% endif %}{% endfor %}]}'
)


def test_the_first_extension_call_in_a_process_is_not_timed_against_the_render(monkeypatch) -> None:
    definitions.core()  # loaded once, so monkeypatch puts this registry back afterwards
    monkeypatch.setattr(definitions, "_core", None)  # as in a worker that has not read them yet
    result = run_mapping(compile_mapping(TEMPLATE), b"{}", limits=Limits(render_timeout_ms=20), validate=False)
    assert result.ok, result.issues
    assert result.output["extension"] == [{"url": BIRTH_PLACE, "valueAddress": {"city": "Oslo"}}]
    assert definitions.core_loaded()


def test_a_template_without_extension_calls_does_not_read_them(monkeypatch) -> None:
    monkeypatch.setattr(definitions, "_core", None)
    result = run_mapping(compile_mapping('{"resourceType": "Patient", "id": "p1"}'), b"{}", validate=False)
    assert result.ok, result.issues
    assert not definitions.core_loaded()
