"""Code systems and code translation: lookup tables, HL7 v2 table/coding-system names and OIDs → FHIR system URIs."""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import pass_environment

from mappings.engine.errors import ErrorCode, MappingError

# C-CDA names code systems by OID; FHIR by URI (terminology.hl7.org "Using Codes" and the FHIR-I OID registry).
OID_URIS = {
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "2.16.840.1.113883.12.292": "http://hl7.org/fhir/sid/cvx",
    "2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    "2.16.840.1.113883.6.103": "http://hl7.org/fhir/sid/icd-9-cm",
    "2.16.840.1.113883.6.104": "http://hl7.org/fhir/sid/icd-9-cm",  # ICD-9-CM volume 3 (procedures)
    "2.16.840.1.113883.6.4": "http://www.cms.gov/Medicare/Coding/ICD10",  # ICD-10-PCS
    "2.16.840.1.113883.6.59": "http://hl7.org/fhir/sid/cvx",  # the legacy CVX OID some C-CDA senders still use
    "2.16.840.1.113883.6.8": "http://unitsofmeasure.org",
    "2.16.840.1.113883.6.69": "http://hl7.org/fhir/sid/ndc",
    "2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt",
    "2.16.840.1.113883.6.101": "http://nucc.org/provider-taxonomy",
    "2.16.840.1.113883.6.238": "urn:oid:2.16.840.1.113883.6.238",
    "2.16.840.1.113883.5.1": "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender",
    "2.16.840.1.113883.5.2": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
    "2.16.840.1.113883.5.4": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "2.16.840.1.113883.5.6": "http://terminology.hl7.org/CodeSystem/v3-ActClass",
    "2.16.840.1.113883.5.8": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "2.16.840.1.113883.5.14": "http://terminology.hl7.org/CodeSystem/v3-ActStatus",
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "2.16.840.1.113883.5.83": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    "2.16.840.1.113883.5.111": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
    "2.16.840.1.113883.5.112": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
    "2.16.840.1.113883.5.1008": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
    "2.16.840.1.113883.5.1063": "http://terminology.hl7.org/CodeSystem/v3-SeverityObservation",
    "2.16.840.1.113883.3.26.1.1": "http://ncithesaurus-stage.nci.nih.gov",
    "2.16.840.1.113883.4.1": "http://hl7.org/fhir/sid/us-ssn",
    "2.16.840.1.113883.4.6": "http://hl7.org/fhir/sid/us-npi",
}

OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

# HL7 v2 coding-system names (table 0396) → FHIR system URIs.
V2_CODING_SYSTEMS = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNM3": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "ICD9": "http://hl7.org/fhir/sid/icd-9-cm",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://hl7.org/fhir/sid/mvx",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "UCUM": "http://unitsofmeasure.org",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C4": "http://www.ama-assn.org/go/cpt",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "HCPCS": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "HCPT": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "CDCPHINVS": "urn:oid:2.16.840.1.114222.4.5.274",
    "PHINQUESTION": "urn:oid:2.16.840.1.114222.4.5.232",
    "NCIT": "http://ncimeta.nci.nih.gov",
    "ISO3166_1": "urn:iso:std:iso:3166",
    "ISO+": "urn:iso:std:iso:11073:10101",
    "UML": "http://www.nlm.nih.gov/research/umls",
}
# HL7 table 0396's local-code names: there is no system to name, so the Coding has none.
LOCAL_SYSTEMS = re.compile(r"^(L|LOCAL|99[A-Z0-9]{3})$")
ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def v2_table(table: object) -> str:
    """The FHIR system of an HL7 v2 table: `'0001' | v2_table` → `http://terminology.hl7.org/CodeSystem/v2-0001`."""
    number = str(table or "").strip().upper().removeprefix("HL7")
    return f"http://terminology.hl7.org/CodeSystem/v2-{number.zfill(4)}" if number.isdigit() else ""


def v2_system(name: object) -> str | None:
    """An HL7 v2 coding-system name (CWE-3, HL7 table 0396: `LN`, `SCT`, `HL70078`, an OID) → its FHIR URI. A name
    it cannot turn into a URI (a local `L` or `99zzz`, free text such as `POST 12H CFST:MCNC`) gives nothing: a Coding
    is better without a system than with one that is not a URI. An absolute URI is kept as it is."""
    text = str(name or "").strip()
    return _v2_system(text) if text else None


@lru_cache(maxsize=1024)
def _v2_system(text: str) -> str | None:
    """v2_system of a name's text. Cached: a few names (LN, SCT, HL70203, an authority's OID) fill every message, and
    a name none of them matches went through three patterns each time."""
    upper = text.upper()
    if upper.startswith("HL7") and upper[3:].isdigit():
        return v2_table(upper)
    if upper in V2_CODING_SYSTEMS:
        return V2_CODING_SYSTEMS[upper]
    if OID.match(text):  # senders often put the code system's OID in CWE-3
        return oid_uri(text)
    if LOCAL_SYSTEMS.match(upper):
        return None
    return text if ABSOLUTE_URI.match(text) else None


def oid_uri(oid: object) -> str | None:
    """A C-CDA codeSystem OID → its FHIR URI (`2.16.840.1.113883.6.1` → `http://loinc.org`), else `urn:oid:…`."""
    text = str(oid or "").strip()
    if not text:
        return None
    return OID_URIS.get(text) or (text if ":" in text else f"urn:oid:{text}")


def _table(env, name: str):
    table = env.lookup_tables.get(name)
    if table is None:
        known = ", ".join(sorted(env.lookup_tables)) or "none"
        raise MappingError(ErrorCode.RND_UNKNOWN_TABLE, f"No lookup table named '{name}'. Known tables: {known}.")
    return table


@pass_environment
def translate(env, code: object, table: str, source_system: object = None) -> dict | None:
    """Translate a source code through a lookup table into a Coding: `msg.PID[8] | translate('gender')`. A code the
    table does not list gives the table's default, or nothing."""
    return _table(env, table).translate(code, source_system)


@pass_environment
def translate_code(env, code: object, table: str, source_system: object = None) -> str | None:
    """Like `translate`, but only the target code: `"gender": {{ msg.PID[8] | translate_code('gender') | tojson }}`."""
    found = _table(env, table).coding(code, source_system)  # read, not copied
    return found.get("code") if found else None
