"""POST /api/sources/{name}/records: a record of an HL7 v2 source is one message; a payload holding several is refused
before anything is stored, naming the record and how many messages it holds."""

from pathlib import Path

import pytest
from django.conf import settings

from mappings import actions, models

pytestmark = pytest.mark.django_db
CORPUS = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
FIVE = (CORPUS / "more/hl7v2/cdc-oru-r01-v2.5.1-five-messages-one-file.hl7").read_text()
ADT = (CORPUS / "fhir-converter/hl7v2/ADT-A01-01.hl7").read_text()
MSH_IN_A_FIELD = (CORPUS / "fhir-converter/hl7v2/ADT04-23.hl7").read_text(encoding="utf-8-sig")  # "…|MSH|…" in PID


@pytest.fixture
def sources(users) -> dict[str, models.DataSource]:
    return {
        source_format: actions.do_create_data_source(
            acting_user=users["author"], name=f"{source_format}-records", source_format=source_format
        )
        for source_format in ("hl7v2", "json")
    }


def upload(api, name: str, *records: tuple[str, str]):
    body = {"records": [{"key": key, "payload": payload} for key, payload in records]}
    return api["author"].post(f"/api/sources/{name}/records", body, format="json")


def test_it_refuses_an_hl7_record_holding_several_messages(api, sources) -> None:
    response = upload(api, "hl7v2-records", ("adt", ADT), ("lab-batch", FIVE))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["details"]["records"] == [
        "Record 'lab-batch' holds 5 HL7 v2 messages; a record is one message. Upload each message as its own record "
        "(or convert the file as a batch, which splits it)."
    ]
    assert not models.SourceRecord.objects.filter(source=sources["hl7v2"]).exists()  # not even the good one


@pytest.mark.parametrize(
    "payload",
    [ADT, MSH_IN_A_FIELD, "FHS|^~\\&|F\rBHS|^~\\&|B\r" + ADT.replace("\n", "\r") + "BTS|1\rFTS|1"],
    ids=["one-message", "msh-inside-a-field", "one-message-in-a-batch-envelope"],
)
def test_it_stores_an_hl7_record_of_one_message(api, sources, payload) -> None:
    response = upload(api, "hl7v2-records", ("one", payload))
    assert response.status_code == 200, response.json()
    assert response.json()["created"] == 1


def test_it_does_not_count_hl7_messages_in_records_of_other_formats(api, sources) -> None:
    response = upload(api, "json-records", ("text", FIVE))  # only an HL7 v2 source's records are HL7 messages
    assert response.status_code == 200, response.json()
