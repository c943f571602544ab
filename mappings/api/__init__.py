"""The studio's JSON REST API (DRF): the browser editor and scripts use the same endpoints."""
