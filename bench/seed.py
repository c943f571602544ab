"""A facade whose live Patient deployment serves N realistic Patients (about 1 KB of JSON each: identifiers, name,
telecom, address, narrative; ids, names, birth dates and places varied by number), built in seconds rather than
hours: the facade, source, mapping and deployment through the actions, then the index rows written by one
INSERT … SELECT generate_series on PostgreSQL, as the indexer would store them. No search values are written, so the
index serves reads and system exports, not searches. Used by bench/export.py."""

from __future__ import annotations

import time

from django.contrib.auth.models import User
from django.db import connection

from mappings import actions
from mappings.models import Deployment, Facade, FacadeResource

TEMPLATE = '{"resourceType": "Patient", "id": {{ msg.id | tojson }}}'
FAMILIES = "Smith Jones Garcia Nguyen Okafor Kowalski Haddad Silva Tanaka Novak Müller O'Brien Petrov Dubois Rossi"
GIVEN = "Ana Ben Chloé Dev Elif Femi Gus Hana Ivan Jun Kofi Lena Mats Nour Olu Pia Quinn Rui Sara Tomas Uma Vik"
CITIES = "Springfield Riverton Lakeside Fairview Georgetown Salem Madison Clinton Ashland Franklin"
STATES = "MA OR WI IL KY NH TX OH VA GA"
INSERT = f"""
INSERT INTO {FacadeResource._meta.db_table} (deployment_id, resource_type, resource_id, content, last_updated)
SELECT %(deployment)s, 'Patient', id, jsonb_build_object(
    'resourceType', 'Patient',
    'id', id,
    'meta', jsonb_build_object('versionId', '1', 'lastUpdated', to_char(updated, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                               'source', '#bench-export'),
    'text', jsonb_build_object('status', 'generated',
        'div', '<div xmlns="http://www.w3.org/1999/xhtml">' || given || ' ' || family || ', born ' || born || '</div>'),
    'extension', jsonb_build_array(jsonb_build_object(
        'url', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', 'valueCode', upper(left(sex, 1)))),
    'identifier', jsonb_build_array(
        jsonb_build_object('use', 'usual', 'type', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/v2-0203', 'code', 'MR'))),
            'system', 'urn:oid:2.16.840.1.113883.19.5', 'value', 'M' || lpad(n::text, 8, '0')),
        jsonb_build_object('system', 'http://hl7.org/fhir/sid/us-ssn',
            'value', '9' || lpad((n %% 100)::text, 2, '0') || '-' || lpad((n %% 97)::text, 2, '0') || '-'
                     || lpad((n %% 9973)::text, 4, '0'))),
    'active', n %% 50 <> 0,
    'name', jsonb_build_array(jsonb_build_object('use', 'official', 'family', family,
        'given', jsonb_build_array(given, left(md5(n::text), 1 + n %% 6)))),
    'telecom', jsonb_build_array(
        jsonb_build_object('system', 'phone', 'value', '555-' || lpad((n %% 10000)::text, 4, '0'), 'use', 'home'),
        jsonb_build_object('system', 'email', 'value', lower(given) || '.' || n || '@example.org')),
    'gender', sex,
    'birthDate', born,
    'address', jsonb_build_array(jsonb_build_object('use', 'home', 'line', jsonb_build_array(
        (1 + n %% 9000) || ' ' || (ARRAY['Main', 'Oak', 'Elm', 'Maple', 'Cedar', 'Pine'])[1 + n %% 6] || ' Street'),
        'city', city, 'state', state, 'postalCode', lpad((n %% 99999)::text, 5, '0'), 'country', 'US')),
    'maritalStatus', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
        'system', 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus',
        'code', (ARRAY['M', 'S', 'D', 'W'])[1 + n %% 4]))),
    'communication', jsonb_build_array(jsonb_build_object('preferred', true, 'language', jsonb_build_object(
        'coding', jsonb_build_array(jsonb_build_object('system', 'urn:ietf:bcp:47',
            'code', (ARRAY['en-US', 'es', 'fr', 'de'])[1 + n %% 4]))))),
    'managingOrganization', jsonb_build_object('reference', 'Organization/org-' || n %% 40)
), updated
FROM (
    SELECT n,
        'pt' || n || '-' || left(md5(n::text), 6) AS id,
        (string_to_array(%(families)s, ' '))[1 + n %% 15] || CASE WHEN n %% 7 = 0 THEN '-' || n %% 101 ELSE '' END
            AS family,
        (string_to_array(%(given)s, ' '))[1 + (n / 15) %% 22] AS given,
        (ARRAY['female', 'male', 'female', 'male', 'other', 'unknown'])[1 + n %% 6] AS sex,
        to_char(date '1925-01-01' + (n::bigint * 7919 %% 35000)::int, 'YYYY-MM-DD') AS born,
        (string_to_array(%(cities)s, ' '))[1 + n %% 10] AS city,
        (string_to_array(%(states)s, ' '))[1 + (n / 10) %% 10] AS state,
        timestamptz '2026-01-01' + (n %% 86400) * interval '1 minute' AS updated
    FROM generate_series(%(first)s, %(last)s) AS n
) AS patient
"""


def patient_facade(slug: str) -> Deployment:
    """A facade serving Patient from a one-record stored source, deployed (and indexed) through the actions."""
    admin = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="bench")
    mapping = actions.do_create_mapping(
        acting_user=admin, slug=f"{slug}-patient", title="Bench patient", source_format="json", template=TEMPLATE
    )
    version = actions.do_publish_version(mapping, acting_user=admin, message="v1")
    source = actions.do_create_data_source(acting_user=admin, name=f"{slug}-registrations", source_format="json")
    actions.do_upload_records(source, acting_user=admin, records=[("r0", '{"id": "p0"}')])
    facade = actions.do_create_facade(acting_user=admin, slug=slug, title="Export benchmark")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    deployment = actions.do_deploy(binding, acting_user=admin, version=version)
    assert deployment.ready, "a one-record source is indexed at deploy time"
    return deployment


def seed_patients(deployment: Deployment, count: int, *, batch: int = 100_000) -> None:
    """Replace the deployment's index with `count` Patients (PostgreSQL only), in batches so progress shows."""
    if connection.vendor != "postgresql":
        raise SystemExit("bench/seed.py writes with PostgreSQL's generate_series: set DATABASE_URL=postgres://…")
    FacadeResource.objects.filter(deployment=deployment).delete()
    words = {"families": FAMILIES, "given": GIVEN, "cities": CITIES, "states": STATES}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for first in range(1, count + 1, batch):
            last = min(count, first + batch - 1)
            cursor.execute(INSERT, {"deployment": deployment.pk, "first": first, "last": last, **words})
            print(f"  seeded {last:,} patients, {time.perf_counter() - started:.1f} s", flush=True)
        cursor.execute(f"ANALYZE {FacadeResource._meta.db_table}")
    Deployment.objects.filter(pk=deployment.pk).update(indexed=count)


def seeded_facade(slug: str, count: int) -> Deployment:
    """The facade `slug` with `count` Patients, built unless it is already there with that many."""
    facade = Facade.objects.filter(slug=slug).first()
    deployment = None
    if facade is not None:
        deployment = Deployment.objects.live().filter(binding__facade=facade).first()
    if deployment is not None and FacadeResource.objects.filter(deployment=deployment).count() == count:
        print(f"{slug}: {count:,} patients already seeded")
        return deployment
    if deployment is None:
        deployment = patient_facade(slug)
    seed_patients(deployment, count)
    return deployment
