"""FHIR facades: the FHIR R4 REST API (views, formats, OperationOutcome errors) and the index it reads from."""
