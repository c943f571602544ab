"""The demo facade `demo` (/fhir/demo/, open): stored HL7 v2 messages from the shared corpus (and the examples' own
samples), served through the published ADT, ORU and VXU demo mappings."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from mappings import actions
from mappings.examples import list_examples
from mappings.models import DataSource, Facade, Mapping

logger = logging.getLogger(__name__)

BINDINGS = {  # example mapping → the resource types the facade serves from its messages
    "hl7v2-adt-a01": ("Patient", "Encounter"),
    "hl7v2-oru-r01": ("Observation", "DiagnosticReport"),
    "hl7v2-vxu-v04": ("Immunization",),
}
# Azure FHIR-Converter's root template names → the demo mappings that do their job, so a client written for Azure's
# $convert-data (rootTemplate=ADT_A01, inputDataType=Hl7v2) works against /fhir/demo/ unchanged.
AZURE_TEMPLATES = {
    "ADT_A01": "hl7v2-adt-a01",
    "ADT_A04": "hl7v2-adt-a01",
    "ADT_A08": "hl7v2-adt-a01",
    "ORU_R01": "hl7v2-oru-r01",
    "VXU_V04": "hl7v2-vxu-v04",
    "CCD": "ccda-ccd",
    "ConsultationNote": "ccda-ccd",
    "OperativeNote": "ccda-ccd",
    "TransferSummary": "ccda-ccd",
    "ExamplePatient": "json-patient",
}


def load_demo_facade(acting_user: AbstractBaseUser | None, examples_dir: Path | None = None) -> Facade | None:
    if Facade.objects.filter(slug="demo").exists():
        return None
    examples = {
        example.name: example for example in list_examples(Path(examples_dir or settings.FHIR_STUDIO["EXAMPLES_DIR"]))
    }
    corpus_dir = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
    published = set(Mapping.objects.filter(latest_version__isnull=False).values_list("slug", flat=True))
    facade = actions.do_create_facade(
        acting_user=acting_user,
        slug="demo",
        title="Demo facade over stored HL7 v2 messages",
        convert_templates={name: slug for name, slug in AZURE_TEMPLATES.items() if slug in published},
    )
    for name, resource_types in BINDINGS.items():
        mapping = Mapping.objects.filter(slug=name).select_related("latest_version").first()
        example = examples.get(name)
        if mapping is None or mapping.latest_version is None or example is None:
            continue
        records = [(f"sample/{case.name}", case.payload().decode(errors="replace")) for case in example.cases]
        if corpus_dir.is_dir():
            records += [
                (path.relative_to(corpus_dir).as_posix(), path.read_text(errors="replace"))
                for path in example.corpus_files(corpus_dir)
            ]
        source = DataSource.objects.filter(name=f"{name}-messages").first() or actions.do_create_data_source(
            acting_user=acting_user,
            name=f"{name}-messages",
            source_format="hl7v2",
            description=f"HL7 v2 messages for {name}: the shared corpus and the example's samples",
        )
        actions.do_upload_records(source, acting_user=acting_user, records=records)
        for resource_type in resource_types:
            binding = actions.do_bind_resource(
                facade, acting_user=acting_user, resource_type=resource_type, mapping=mapping, source=source
            )
            deployment = actions.do_deploy(binding, acting_user=acting_user, version=mapping.latest_version)
            logger.info("demo facade: %s from %s, %d indexed", resource_type, name, deployment.indexed)
    return facade
