"""What "test connection" says about a server: one stable code and a sentence, plus what its CapabilityStatement
declares. Reads `metadata` with the connection's auth (so a token-based mode gets a token first: a refused client is
`unauthorized`), then checks it is a CapabilityStatement for FHIR 4.0.x."""

from __future__ import annotations

from dataclasses import dataclass, field

from mappings.connectors.client import FhirClient
from mappings.connectors.errors import FhirError

# Every code a diagnosis can carry, in the order a request meets them.
CODES = (
    "host_refused",
    "redirect_refused",
    "dns_failed",
    "refused",
    "tls_failed",
    "timeout",
    "unreachable",
    "unauthorized",
    "invalid_auth",
    "not_fhir",
    "not_r4",
    "ok",
)


@dataclass(frozen=True)
class Diagnosis:
    code: str
    message: str
    software: str = ""
    fhir_version: str = ""
    resource_types: list[str] = field(default_factory=list)
    interactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def diagnose(client: FhirClient) -> Diagnosis:
    try:
        statement = client.capabilities()
    except FhirError as error:
        if error.code in CODES:
            return Diagnosis(error.code, error.message)
        return Diagnosis("not_fhir", f"{client.base_url}/metadata gave no CapabilityStatement: {error.message}")
    if statement.get("resourceType") != "CapabilityStatement":
        found = statement.get("resourceType") or "JSON without a resourceType"
        return Diagnosis("not_fhir", f"{client.base_url}/metadata answered {found}, not a CapabilityStatement.")
    found = capabilities_of(statement)
    if not found.fhir_version.startswith("4.0."):
        return Diagnosis(
            "not_r4",
            f"The server speaks FHIR {found.fhir_version or '(no fhirVersion)'}; the studio needs R4 (4.0.x).",
            **_declared(found),
        )
    return found


def capabilities_of(statement: dict) -> Diagnosis:
    software = statement.get("software") or {}
    name = " ".join(str(part) for part in (software.get("name"), software.get("version")) if part)
    interactions: dict[str, list[str]] = {}
    for rest in statement.get("rest") or []:
        if rest.get("mode", "server") != "server":
            continue
        for resource in rest.get("resource") or []:
            if resource.get("type"):
                codes = [item.get("code") for item in resource.get("interaction") or [] if item.get("code")]
                interactions[str(resource["type"])] = sorted(set(interactions.get(resource["type"], []) + codes))
        system = [item.get("code") for item in rest.get("interaction") or [] if item.get("code")]
        if system:
            interactions["system"] = sorted(set(system))
    version = str(statement.get("fhirVersion") or "")
    types = sorted(key for key in interactions if key != "system")
    message = f"{name or 'A FHIR server'} speaks FHIR {version} with {len(types)} resource types."
    return Diagnosis("ok", message, name, version, types, interactions)


def _declared(found: Diagnosis) -> dict:
    return {
        "software": found.software,
        "fhir_version": found.fhir_version,
        "resource_types": found.resource_types,
        "interactions": found.interactions,
    }
