"""A web worker's start-up (fhirstudio/wsgi.py, imported by each gunicorn worker): the FHIR definitions are loaded
before the first request and frozen with everything else alive, so a request's collections no longer walk them, and
young collections come every 10,000 allocations rather than 700."""

import os
import subprocess
import sys

from tests.api.conftest import ROOT

PROBE = """
import gc
import fhirstudio.wsgi
from mappings.engine import definitions
print(definitions._core is not None, gc.get_freeze_count(), gc.get_threshold()[0])
"""


def test_a_web_worker_loads_the_definitions_freezes_them_and_collects_less_often(tmp_path) -> None:
    env = {**os.environ, "FHIR_STUDIO_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "fhirstudio.settings"}
    env.pop("DATABASE_URL", None)  # nothing here touches a database
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, frozen, young = done.stdout.split()
    assert loaded == "True"
    assert int(young) == 10_000  # young collections every 10,000 allocations, not 700
    assert int(frozen) > 100_000  # Django and the definitions: hundreds of thousands of containers
