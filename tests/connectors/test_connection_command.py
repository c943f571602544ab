"""`manage.py fhirstudio connection-test <name>`: the diagnosis as JSON, exit 0 when the server is a FHIR R4 server,
2 otherwise (and for an unknown connection)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from mappings.actions.connections import do_create_connection
from mappings.models import Connection
from tests.connectors.conftest import Answer

pytestmark = pytest.mark.django_db


def run(name: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        call_command("fhirstudio", "connection-test", name)
    captured = capsys.readouterr()
    return ended.value.code, captured.out, captured.err


def test_it_prints_the_diagnosis_and_exits_0_for_a_fhir_r4_server(stub, settings, capsys) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [stub.host]}
    do_create_connection(acting_user=None, name="stub", base_url=stub.base)
    code, out, _ = run("stub", capsys)
    found = json.loads(out)
    assert code == 0 and found["code"] == "ok" and found["fhir_version"] == "4.0.1"
    assert Connection.objects.get(name="stub").check_code == "ok"


def test_it_exits_2_for_a_server_that_is_not_r4_or_a_connection_that_does_not_exist(stub, settings, capsys) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [stub.host]}
    stub.on("/fhir/metadata", Answer(body={"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"}))
    do_create_connection(acting_user=None, name="stub", base_url=stub.base)
    code, out, _ = run("stub", capsys)
    assert code == 2 and json.loads(out)["code"] == "not_r4"
    code, _, err = run("nothing-here", capsys)
    assert code == 2 and "No connection 'nothing-here'" in err
