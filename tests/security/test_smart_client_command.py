"""`fhirstudio smart-client <facade> --scope ... --out DIR`: a client app with a fresh key pair, whose private key
(written only into DIR, mode 0600) gets a token from the facade's token endpoint."""

from __future__ import annotations

import io
import stat
import time
import uuid

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command
from joserfc import jwt
from joserfc.jwk import import_key

from mappings.models import ClientApp
from tests.security.conftest import TOKEN_URL, token_request

pytestmark = pytest.mark.django_db(transaction=True)  # deploys index on commit


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("fhirstudio", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("algorithm, key_type", [("ES384", "EC"), ("RS384", "RSA")])
def test_it_registers_a_client_whose_key_gets_a_token(protected, client, tmp_path, algorithm, key_type) -> None:
    keys = tmp_path / "keys"
    code, out, _ = run("smart-client", "clinic", "--scope", "system/*.rs", "--out", str(keys), "--alg", algorithm)
    assert code == 0, out
    client_id = out.split("client id:")[1].split()[0]
    assert f"token URL:   {settings.SITE_ROOT}/fhir/clinic/auth/token" in out
    app = ClientApp.objects.get(client_id=client_id)
    assert app.scopes == ["system/*.rs"] and list(app.facades.values_list("slug", flat=True)) == ["clinic"]
    pem = keys / "private-key.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    jwks = orjson.loads((keys / "jwks.json").read_bytes())
    assert jwks == app.jwks and "d" not in jwks["keys"][0] and jwks["keys"][0]["kty"] == key_type
    private = import_key(pem.read_bytes(), key_type)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 200,
        "jti": uuid.uuid4().hex,
    }
    signed = jwt.encode({"alg": algorithm, "kid": jwks["keys"][0]["kid"]}, claims, private, algorithms=[algorithm])
    answer = token_request(client, signed)
    assert answer.status_code == 200 and answer.json()["scope"] == "system/*.rs"


def test_it_refuses_an_unknown_facade_a_bad_scope_and_a_used_folder(protected, tmp_path) -> None:
    code, _, err = run("smart-client", "nowhere", "--scope", "system/*.rs", "--out", str(tmp_path / "a"))
    assert code == 2 and "No facade 'nowhere'" in err
    code, _, err = run("smart-client", "clinic", "--scope", "patient/*.read", "--out", str(tmp_path / "b"))
    assert code == 2 and "cannot be granted" in err
    assert run("smart-client", "clinic", "--scope", "system/*.rs", "--out", str(tmp_path / "c"))[0] == 0
    code, _, err = run("smart-client", "clinic", "--scope", "system/*.rs", "--out", str(tmp_path / "c"))
    assert code == 2 and "exists" in err
    assert ClientApp.objects.count() == 1
