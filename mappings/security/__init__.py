"""SMART Backend Services for protected facades: scopes (scopes.py), the client assertion a token request carries
(assertions.py), the studio's own access tokens (tokens.py), the token endpoint and smart-configuration (views.py),
the check every facade request of a protected facade passes (enforcement.py), the client-app actions (actions.py) and
a client app with a fresh key pair for `fhirstudio smart-client` (clients.py)."""
