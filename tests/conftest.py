"""Shared fixtures. Engine tests need no database; anything touching Django's DB runs on DATABASE_URL (PostgreSQL in
CI, SQLite otherwise)."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from mappings.examples import Example, list_examples

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = settings.FHIR_STUDIO["CORPUS_DIR"]
    if not path.is_dir():
        pytest.fail(f"The shared corpus is missing at {path}: check out ../shared beside the repository.")
    return path


def all_examples() -> list[Example]:
    return list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The production hasher spends ~0.3 s per password on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_counts_from_earlier_tests():
    # Sign-in and token-endpoint counts live in the default cache (files under the var dir), which outlives a test:
    # a suite's deliberate failures would add up to the per-address limit (50) and refuse a later test's sign-in.
    cache.clear()


def worker_database_url() -> str:
    """The test database itself (pytest-django's test_… name) as a DATABASE_URL, so a process the test starts (a
    Celery worker, a gunicorn server) sees what the test committed."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{Path(db['NAME']).resolve()}"
