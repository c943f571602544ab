from tests.api.conftest import _fresh_compile_cache, json_patient, users  # noqa: F401 — shared fixtures
