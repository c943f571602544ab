"""The run command is safe to leave running (issue 15): DEBUG off unless asked for, the hosts the studio answers for
from HOST, and a secret key and demo password of its own, generated once into the var directory (no constants)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.DEBUG, s.ALLOWED_HOSTS, s.SECRET_KEY, s.FHIR_STUDIO['DEMO_PASSWORD']]))"
)


def settings_in(var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """The settings as a fresh process started with only `env` (and PATH) reads them."""
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "fhirstudio.settings"}
    clean |= {"FHIR_STUDIO_VAR_DIR": str(var_dir), **env}
    code = f"import django; django.setup(); {SHOW}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_debug_is_off_and_secrets_are_generated_once_into_var(tmp_path) -> None:
    first = settings_in(tmp_path)
    assert first.returncode == 0, first.stderr
    debug, hosts, secret_key, demo_password = json.loads(first.stdout)
    assert debug is False
    assert hosts == ["127.0.0.1", "localhost", "[::1]"]
    assert len(secret_key) >= 40 and len(demo_password) >= 40 and secret_key != demo_password
    for name, value in (("secret-key", secret_key), ("demo-password", demo_password)):
        kept = tmp_path / name
        assert kept.read_text().strip() == value
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(settings_in(tmp_path).stdout)[2:] == [secret_key, demo_password]  # kept across restarts
    assert json.loads(settings_in(tmp_path / "other").stdout)[2] != secret_key  # no constant


def test_the_environment_still_decides(tmp_path) -> None:
    shown = settings_in(
        tmp_path, DEBUG="true", HOST="studio.internal", SECRET_KEY="from-env", FHIR_STUDIO_DEMO_PASSWORD=""
    )
    debug, hosts, secret_key, demo_password = json.loads(shown.stdout)
    assert (debug, secret_key, demo_password) == (True, "from-env", "")
    assert hosts[:3] == ["studio.internal", "localhost", "127.0.0.1"]
    assert not (tmp_path / "secret-key").exists() and not (tmp_path / "demo-password").exists()


def test_listening_on_every_interface_needs_the_host_names(tmp_path) -> None:
    refused = settings_in(tmp_path, HOST="0.0.0.0")
    assert refused.returncode != 0 and "set ALLOWED_HOSTS" in refused.stderr
    listed = settings_in(tmp_path, HOST="0.0.0.0", ALLOWED_HOSTS="studio.example.org")
    assert json.loads(listed.stdout)[1] == ["studio.example.org"]
