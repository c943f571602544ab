"""The FHIR filter library available to every template. `FILTERS`, `GLOBALS` and `TESTS` are the registry; the
docstring of each function is its documentation (the editor shows it in completion)."""

from . import ccda_types, codes, dates, hl7v2_types, values

FILTERS = {
    "tojson": values.tojson,
    "fhir_date": dates.fhir_date,
    "fhir_datetime": dates.fhir_datetime,
    "fhir_instant": dates.fhir_instant,
    "decimal": values.to_decimal,
    "integer": values.to_integer,
    "boolean": values.to_boolean,
    "fhir_id": values.fhir_id,
    "urn_uuid": values.urn_uuid,
    "translate": codes.translate,
    "translate_code": codes.translate_code,
    "v2_table": codes.v2_table,
    "v2_system": codes.v2_system,
    "oid_uri": codes.oid_uri,
    "base64": values.base64,
    # HL7 v2 data types → FHIR data types (filters/hl7v2_types.py): `{{ cx | identifier_from_cx }}`.
    "system_from_hd": hl7v2_types.system_from_hd,
    "identifier_from_cx": hl7v2_types.identifier_from_cx,
    "identifier_from_ei": hl7v2_types.identifier_from_ei,
    "identifier_from_xcn": hl7v2_types.identifier_from_xcn,
    "human_name_from_xpn": hl7v2_types.human_name_from_xpn,
    "human_name_from_xcn": hl7v2_types.human_name_from_xcn,
    "address_from_xad": hl7v2_types.address_from_xad,
    "telecom_from_xtn": hl7v2_types.telecom_from_xtn,
    "display_from_pl": hl7v2_types.display_from_pl,
    "text_from_cwes": hl7v2_types.text_from_cwes,
    "coding_from_cwe": hl7v2_types.coding_from_cwe,
    "codeable_concept_from_cwe": hl7v2_types.codeable_concept_from_cwe,
    # C-CDA data types → FHIR data types (filters/ccda_types.py): `{{ obs.code | concept_from_cd }}`.
    "system_from_oid": ccda_types.system_from_oid,
    "identifier_from_ii": ccda_types.identifier_from_ii,
    "coding_from_cd": ccda_types.coding_from_cd,
    "concept_from_cd": ccda_types.concept_from_cd,
    "human_name_from_pn": ccda_types.human_name_from_pn,
    "address_from_ad": ccda_types.address_from_ad,
    "contact_point_from_tel": ccda_types.contact_point_from_tel,
    "period_from_ivl_ts": ccda_types.period_from_ivl_ts,
    "quantity_from_pq": ccda_types.quantity_from_pq,
    "choice_from_ts": ccda_types.choice_from_ts,
    "value_from_any": ccda_types.value_from_any,
}

GLOBALS = {
    "fhir_id": values.fhir_id,
    "urn_uuid": values.urn_uuid,
    "reference": values.reference,
    "coding": values.coding,
    "codeable_concept": values.codeable_concept,
    "identifier": values.identifier,
    "quantity": values.quantity,
    "extension": values.extension,
    "fail": values.fail,
}

TESTS = {
    "present": lambda value: bool(value) and str(value).strip() != "",
}


# The lookup tables a filter reads by itself (not through an argument): a template calling it depends on them.
TABLES_READ = {name: function.reads_tables for name, function in FILTERS.items() if hasattr(function, "reads_tables")}


def documentation() -> list[dict]:
    """Name, kind and doc of every filter and global, for the README and the editor's completion."""
    rows = [{"name": name, "kind": "filter", "doc": (func.__doc__ or "").strip()} for name, func in FILTERS.items()]
    rows += [{"name": name, "kind": "function", "doc": (func.__doc__ or "").strip()} for name, func in GLOBALS.items()]
    return rows
