"""HL7 v2.5 segment, field and component names for the editor (completion, the source tree), read from hl7apy's
structure tables (MIT licence) once per process. Segment titles are not in those tables; the common ones are below."""

from __future__ import annotations

import functools
import re

SEGMENT_TITLES = {
    "MSH": "Message Header",
    "EVN": "Event Type",
    "PID": "Patient Identification",
    "PD1": "Patient Additional Demographic",
    "NK1": "Next of Kin / Associated Parties",
    "PV1": "Patient Visit",
    "PV2": "Patient Visit - Additional Information",
    "AL1": "Patient Allergy Information",
    "DG1": "Diagnosis",
    "PR1": "Procedures",
    "GT1": "Guarantor",
    "IN1": "Insurance",
    "IN2": "Insurance Additional Information",
    "IN3": "Insurance Additional Information, Certification",
    "OBR": "Observation Request",
    "OBX": "Observation/Result",
    "NTE": "Notes and Comments",
    "ORC": "Common Order",
    "RXA": "Pharmacy/Treatment Administration",
    "RXR": "Pharmacy/Treatment Route",
    "RXE": "Pharmacy/Treatment Encoded Order",
    "RXO": "Pharmacy/Treatment Order",
    "RXD": "Pharmacy/Treatment Dispense",
    "SPM": "Specimen",
    "SFT": "Software Segment",
    "MSA": "Message Acknowledgment",
    "ERR": "Error",
    "ROL": "Role",
    "MRG": "Merge Patient Information",
    "TQ1": "Timing/Quantity",
    "TQ2": "Timing/Quantity Relationship",
    "SCH": "Scheduling Activity Information",
    "AIS": "Appointment Information - Service",
    "AIG": "Appointment Information - General Resource",
    "AIL": "Appointment Information - Location Resource",
    "AIP": "Appointment Information - Personnel Resource",
    "ACC": "Accident",
    "UB1": "UB82",
    "UB2": "UB92 Data",
    "DRG": "Diagnosis Related Group",
    "ZPD": "Site-defined (Z)",
    "FT1": "Financial Transaction",
    "IAM": "Patient Adverse Reaction Information",
    "PRT": "Participation Information",
    "QRD": "Original-Style Query Definition",
    "QPD": "Query Parameter Definition",
    "RCP": "Response Control Parameter",
    "TXA": "Transcription Document Header",
    "CTI": "Clinical Trial Identification",
    "BLG": "Billing",
}

# hl7apy names are constants (PATIENT_NAME, SUFFIX_E_G_JR_OR_III); the editor shows words.
_SMALL_WORDS = {"of", "or", "and", "the", "to", "for", "a", "in", "by", "on", "e.g."}
# Kept in capitals, as the spec writes them ("Set ID - OBX", "Universal ID", "DRG Grouper Review Code"); segment ids
# are added when the tables load.
_ACRONYMS = {"id", "oid", "uid", "hl7", "drg", "ssn", "ndc", "dea", "dmv", "cms", "vip", "irb", "mfn", "cpu"}
_ACRONYMS |= {"ub", "ur", "md", "iii"}


def _word(word: str, index: int, acronyms: frozenset[str]) -> str:
    if word in acronyms:
        return word.upper()
    if index and word in _SMALL_WORDS:
        return word
    return word.capitalize()


def _words(constant: str, acronyms: frozenset[str] = frozenset(_ACRONYMS)) -> str:
    words = re.sub(r"_E_G_", " e.g. ", constant).replace("_S_", "'s ").replace("_", " ").lower().split()
    return " ".join(_word(word, index, acronyms) for index, word in enumerate(words))


def _components(children: object, acronyms: frozenset[str], *, depth: int = 1) -> list[dict]:
    """Components of a composite datatype; at depth 1 each composite component lists its sub-components too
    (PID-3.4 is an HD: namespace id, universal id, universal id type)."""
    if not isinstance(children, tuple):
        return []
    found = []
    for child in children:
        name, spec = child[0], child[1]
        row = {"position": int(name.rsplit("_", 1)[1]), "name": _words(spec[3] or name, acronyms), "datatype": spec[2]}
        if depth == 1 and spec[0] == "sequence":
            row["components"] = _components(spec[1], acronyms, depth=2)
        found.append(row)
    return found


@functools.cache
def hl7v2_segments() -> dict[str, dict]:
    """{segment id: {id, description, fields: [{position, name, datatype, repeats, table, components}]}}."""
    from hl7apy.v2_5 import segments  # ~60 ms with the tables below; only the editor needs it

    acronyms = frozenset(_ACRONYMS | {segment_id.lower() for segment_id in segments.SEGMENTS})
    found: dict[str, dict] = {}
    for segment_id, (_, fields) in segments.SEGMENTS.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", segment_id):
            continue
        rows = []
        for field_name, spec, cardinality, _ in fields:
            kind, children, datatype, long_name, table = spec[0], spec[1], spec[2], spec[3], spec[4]
            rows.append(
                {
                    "position": int(field_name.rsplit("_", 1)[1]),
                    "name": _words(long_name or field_name, acronyms),
                    "datatype": datatype,
                    "repeats": cardinality[1] == -1,
                    "table": table,
                    "components": _components(children, acronyms) if kind == "sequence" else [],
                }
            )
        found[segment_id] = {"id": segment_id, "description": SEGMENT_TITLES.get(segment_id, ""), "fields": rows}
    return found


def field_info(segment_id: str, position: int) -> dict | None:
    """{position, name, datatype, repeats, table, components} of one field, or None when v2.5 does not define it."""
    segment = hl7v2_segments().get(segment_id)
    if segment is None:
        return None
    return next((field for field in segment["fields"] if field["position"] == position), None)
