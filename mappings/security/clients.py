"""A client app with a fresh key pair, for `fhirstudio smart-client`: the studio keeps only the public key (as a
JWKS); the private key is written once, as PEM, into a folder of the caller's choosing and never stored."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from joserfc.jwk import ECKey, RSAKey

from mappings.models import ClientApp, Facade
from mappings.security.actions import do_register_client_app

PRIVATE_KEY_FILE = "private-key.pem"
JWKS_FILE = "jwks.json"


@dataclass(frozen=True)
class NewClient:
    client: ClientApp
    token_url: str
    private_key: Path
    jwks: Path


def create_smart_client(
    facade: Facade, *, scopes: list[str], out_dir: Path, algorithm: str = "ES384", name: str = ""
) -> NewClient:
    """Register a client app for `facade` with a new ES384 (P-384) or RS384 (RSA 3072) key pair; write its private
    key (mode 0600) and public JWKS into `out_dir`. Files already there are not overwritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, jwks_path = out_dir / PRIVATE_KEY_FILE, out_dir / JWKS_FILE
    for path in (private_path, jwks_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: choose an empty folder (keys are never overwritten).")
    key = ECKey.generate_key("P-384") if algorithm == "ES384" else RSAKey.generate_key(3072)
    public = key.as_dict(private=False, kid=key.thumbprint(), alg=algorithm, use="sig")
    client = do_register_client_app(
        acting_user=None,
        name=name or f"smart-client for {facade.slug}",
        scopes=scopes,
        facades=[facade],
        jwks={"keys": [public]},
    )
    # Written with O_EXCL and 0600 from the start: the key is never readable by others, not even for a moment.
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.as_pem(private=True))
    jwks_path.write_bytes(orjson.dumps({"keys": [public]}, option=orjson.OPT_INDENT_2))
    token_url = f"{settings.SITE_ROOT.rstrip('/')}/fhir/{facade.slug}/auth/token"
    return NewClient(client, token_url, private_path, jwks_path)
