"""Server-side request forgery: templates cannot call out at all, and the URLs the studio itself calls (HTTP data
sources, client apps' JWKS URLs) reach allow-listed hosts only, never a loopback, private, link-local or metadata
address unless that address itself is listed, whatever the name resolves to, and without following redirects
(mappings/outbound.py)."""

from __future__ import annotations

import ast
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from mappings.engine import MappingError, compile_mapping, run_mapping
from mappings.engine.environment import build_environment
from mappings.outbound import OutboundRefusedError, check_outbound_url, outbound_get, pinned_session
from mappings.sources import SourceError
from mappings.sources import http as http_source
from tests.security.conftest import assertion, token_request
from tests.security.test_discovery import JWKSServer, allow, url_client

ENGINE = Path(__file__).resolve().parents[2] / "mappings" / "engine"
NETWORK_MODULES = {"socket", "ssl", "http", "urllib", "requests", "httpx", "urllib3", "aiohttp", "ftplib", "smtplib"}
SAFE_ORIGINS = ("jinja2.", "markupsafe", "mappings.engine.", "builtins", "_operator")  # tests: operator.eq…


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every attempt to resolve a name or open a connection, recorded and refused."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network use in a test that must make none")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_it_imports_no_network_module_in_the_engine() -> None:
    found = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [(path.name, name) for name in names if name.split(".")[0] in NETWORK_MODULES]
    assert found == []


def test_it_offers_templates_no_global_or_filter_from_a_network_module() -> None:
    env = build_environment({}, strict=False, max_value_bytes=1024, lookup_tables={}, timezone="UTC")
    callables = {
        **{f"global {k}": v for k, v in env.globals.items()},
        **{f"filter {k}": v for k, v in env.filters.items()},
    }
    callables.update({f"test {k}": v for k, v in env.tests.items()})
    origins = {name: getattr(value, "__module__", None) or type(value).__module__ for name, value in callables.items()}
    assert {name: origin for name, origin in origins.items() if not origin.startswith(SAFE_ORIGINS)} == {}
    assert not {"urlopen", "request", "get", "fetch", "open", "import", "__import__"} & set(env.globals)


URL = "http://169.254.169.254/latest/meta-data/"
REACHING_OUT = [
    ("a global that is not there", "{{ urlopen('" + URL + "') }}", "FS-RND-001"),
    ("an import of a module", '{% import "urllib.request" as u %}', "FS-TPL-002"),
    (
        "builtins through a global",
        "{{ cycler.__init__.__globals__['__builtins__']['__import__']('socket') }}",
        "FS-RND-003",
    ),
    ("a loader through internals", "{{ self._TemplateReference__context.environment.loader }}", "FS-RND-003"),
    ("an include of a URL", '{% include "' + URL + '" %}', "FS-TPL-002"),
    ("every URL-ish filter", "{{ ('" + URL + "' | urlize | urlencode | string) | tojson }}", "FS-PST-002"),
]


@pytest.mark.parametrize(("case", "template", "code"), REACHING_OUT, ids=[case[0] for case in REACHING_OUT])
def test_it_makes_no_call_for_a_template_that_reaches_for_the_network(no_network, case, template, code) -> None:
    try:
        result = run_mapping(compile_mapping(template), "{}", validate=False)
        codes = [error.code for error in result.errors]
    except MappingError as exc:  # refused when compiling
        codes = [exc.code]
    assert codes == [code]
    assert no_network == []


# --- check_outbound_url: the allow-list, then every address the name resolves to ---------------------------------


def resolving_to(*addresses: str):
    def resolve(host, port, **kwargs):
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    return resolve


REFUSED = [
    ("not listed", "http://example.org/", ["example.net"], "not on the allow-list"),
    ("another port", "http://127.0.0.1:8081/", ["127.0.0.1:8080"], "not on the allow-list"),
    ("metadata by name", "http://metadata.example/", ["metadata.example"], "169.254.169.254, a link-local"),
    ("loopback by name", "http://localhost:8080/", ["localhost:8080"], "127.0.0.1, a loopback"),
    ("decimal address", "http://2130706433/", ["2130706433"], "unusual form"),
    ("octal address", "http://0177.0.0.1/", ["0177.0.0.1"], "unusual form"),
    ("hex address", "http://0x7f.0.0.1/", ["0x7f.0.0.1"], "unusual form"),
    ("short address", "http://127.1/", ["127.1"], "unusual form"),
    ("credentials in the URL", "http://user:pw@example.org/", ["example.org"], "Credentials"),
    ("a file URL", "file:///etc/passwd", ["localhost"], "Only http and https"),
    ("a gopher URL", "gopher://example.org/", ["example.org"], "Only http and https"),
]


@pytest.mark.parametrize(("case", "url", "hosts", "message"), REFUSED, ids=[case[0] for case in REFUSED])
def test_it_refuses_urls_off_the_list_or_in_disguise(case, url, hosts, message) -> None:
    resolve = resolving_to("169.254.169.254" if "metadata" in url else "127.0.0.1")
    with pytest.raises(OutboundRefusedError, match=message):
        check_outbound_url(url, hosts, resolve=resolve)


REBOUND = ["127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1"]
REBOUND += ["fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1"]


@pytest.mark.parametrize("address", REBOUND)
def test_it_refuses_a_listed_name_that_resolves_to_a_forbidden_address(address) -> None:
    with pytest.raises(OutboundRefusedError, match="resolves to"):
        check_outbound_url("https://legacy.example.org/api", ["legacy.example.org"], resolve=resolving_to(address))


def test_it_refuses_a_name_with_one_forbidden_address_among_public_ones() -> None:
    resolve = resolving_to("93.184.215.14", "127.0.0.1")
    with pytest.raises(OutboundRefusedError, match=r"127\.0\.0\.1"):
        check_outbound_url("https://legacy.example.org/", ["legacy.example.org"], resolve=resolve)


ADDRESS_LITERALS = [
    ("http://[::1]:8080/", "::1"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
    ("http://169.254.169.254/latest", "169.254.169.254"),
    ("http://10.1.2.3/", "10.1.2.3"),
]


@pytest.mark.parametrize(("url", "address"), ADDRESS_LITERALS, ids=[url for url, _ in ADDRESS_LITERALS])
def test_it_refuses_an_address_literal_unless_that_address_is_listed(url, address) -> None:
    with pytest.raises(OutboundRefusedError):
        check_outbound_url(url, ["legacy.example.org"])
    with pytest.raises(OutboundRefusedError):
        check_outbound_url(url, ["10.9.9.9", "127.0.0.2"])
    assert check_outbound_url(url, [address if ":" not in address else f"[{address}]"]) in (address, "127.0.0.1")


def test_it_reaches_listed_addresses_and_networks() -> None:
    assert check_outbound_url("http://127.0.0.1:8080/x", ["127.0.0.1:8080"]) == "127.0.0.1"
    assert check_outbound_url("http://10.1.2.3/", ["10.0.0.0/8"]) == "10.1.2.3"
    internal = check_outbound_url(
        "http://legacy.internal/", ["legacy.internal", "10.0.0.0/8"], resolve=resolving_to("10.4.4.4")
    )
    assert internal == "10.4.4.4"  # a private API the administrator named by its network too
    public = check_outbound_url(
        "https://fhir.example.org/", ["fhir.example.org"], resolve=resolving_to("93.184.215.14")
    )
    assert public == "93.184.215.14"


# --- the calls themselves: pinned to the checked address, no redirects ------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        Recorder.seen.append((self.path, self.headers.get("Host", "")))
        status = 302 if self.path == "/redirect" else 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", URL)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_it_connects_to_the_checked_address_not_to_a_second_lookup(recorder) -> None:
    # rebind.invalid resolves nowhere: the request can only arrive if the session connects to the checked address
    url = f"http://rebind.invalid:{recorder}/patients"
    address = check_outbound_url(url, [f"rebind.invalid:{recorder}", "127.0.0.1"], resolve=resolving_to("127.0.0.1"))
    with pinned_session(address) as session:
        assert session.get(url, timeout=5).status_code == 200
    assert Recorder.seen == [("/patients", f"rebind.invalid:{recorder}")]


def test_it_does_not_follow_a_redirect_to_the_metadata_address(recorder) -> None:
    answer = outbound_get(f"http://127.0.0.1:{recorder}/redirect", [f"127.0.0.1:{recorder}"], timeout=5)
    assert answer.status_code == 302
    assert Recorder.seen == [("/redirect", f"127.0.0.1:{recorder}")]


def test_it_refuses_an_http_source_listed_by_a_name_that_resolves_to_loopback(recorder, settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [f"localhost:{recorder}"]}
    config = {"base_url": f"http://localhost:{recorder}", "search_path": "/patients", "retries": 0}
    with pytest.raises(SourceError, match=r"127\.0\.0\.1, a loopback address") as refused:
        http_source.fetch(config, "search_path", {})
    assert refused.value.status == 500
    assert Recorder.seen == []
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [f"127.0.0.1:{recorder}"]}
    assert http_source.fetch({**config, "base_url": f"http://127.0.0.1:{recorder}"}, "search_path", {}) == []
    assert Recorder.seen == [("/patients", f"127.0.0.1:{recorder}")]


@pytest.mark.parametrize("base", ["http://2130706433:{port}", "http://0177.0.0.1:{port}"])
def test_it_refuses_an_http_source_at_loopback_in_a_numeric_spelling_even_listed(recorder, settings, base) -> None:
    base = base.format(port=recorder)
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [base.split("/")[2]]}
    with pytest.raises(SourceError, match="not an allowed host"):
        http_source.fetch({"base_url": base, "search_path": "/patients", "retries": 0}, "search_path", {})
    assert Recorder.seen == []


def test_it_does_not_fetch_a_jwks_url_listed_by_a_name_that_resolves_to_loopback(protected, client, settings) -> None:
    key = ECKey.generate_key("P-384")
    with JWKSServer({"keys": [key.as_dict(private=False, kid="k1", alg="ES384")]}) as host:
        by_name = host.url.replace("127.0.0.1", "localhost")
        allow(settings, by_name)
        app = url_client(by_name) | {"key": key}
        answer = token_request(client, assertion(app))
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
        assert "loopback" in answer.json()["error_description"]
        assert host.hits == []
