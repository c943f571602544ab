"""Clients for other FHIR servers (issue 16): a plain Python library on requests, usable from a script, a worker or
the studio. It imports nothing of the studio's models, actions or views (an import-linter contract): the studio turns
a Connection row into a client in mappings/actions/connections.py, passing its secrets opened and its host allow-list.

    from mappings.connectors import FhirClient, SmartBackendAuth
    client = FhirClient(base, auth=SmartBackendAuth(client_id="app", private_key=pem, scope="system/*.rs"))
    patient = client.read("Patient", "123")
"""

from mappings.connectors.auth import Auth, BasicAuth, BearerAuth, ClientCredentialsAuth, SmartBackendAuth
from mappings.connectors.bulk import BulkClient
from mappings.connectors.bundles import EntryResult, as_bundle, entry_results
from mappings.connectors.client import FhirClient, WriteResult, etag_of
from mappings.connectors.diagnosis import Diagnosis, diagnose
from mappings.connectors.errors import FhirError
from mappings.connectors.transport import RetryPolicy, Transport

__all__ = [
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "BulkClient",
    "ClientCredentialsAuth",
    "Diagnosis",
    "EntryResult",
    "FhirClient",
    "FhirError",
    "RetryPolicy",
    "SmartBackendAuth",
    "Transport",
    "WriteResult",
    "as_bundle",
    "diagnose",
    "entry_results",
    "etag_of",
]
