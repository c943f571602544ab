"""The one check for every URL the studio itself calls (HTTP data sources, JWKS URLs of client apps, FHIR
connections): no server-side request forgery through a configured URL.

A URL passes when its host (or host:port) is on the caller's allow-list AND every address the name resolves to is
public, or is itself on the list (an IP, IP:port or CIDR entry). So `legacy.example.org` on the list still cannot
reach 169.254.169.254, 127.0.0.1, 10.x or fe80:: through its DNS answer (rebinding), while a listed `127.0.0.1:8080`
or `10.0.0.0/8` is reachable because the administrator named the address. Numeric host forms that resolvers read as
addresses but that are not written as one (2130706433, 0177.0.0.1, 0x7f.1) are refused outright.

`pinned_session(address)` then connects to the checked address rather than resolving the name a second time (a
rebinding answer between check and connect cannot redirect the call); TLS still verifies the certificate against the
name. Callers pass `allow_redirects=False`: a redirect answer is an error, never followed.

Imports no models (mappings.sources uses it)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_PORTS = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list]


class OutboundRefusedError(ValueError):
    """The URL may not be called; the message says why (it names the host and address, never credentials)."""


def check_outbound_url(url: str, allowed_hosts: Iterable[str], *, resolve: Resolver = socket.getaddrinfo) -> str:
    """The address to connect to for `url`, or OutboundRefusedError. `allowed_hosts` entries: `host`, `host:port`, an IP
    (`127.0.0.1`, `::1`), `IP:port` (`[::1]:8080` for IPv6), or a network (`10.0.0.0/8`)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise OutboundRefusedError(f"Only http and https URLs can be called, not {parts.scheme or 'a bare path'}.")
    if not parts.hostname:
        raise OutboundRefusedError("The URL names no host.")
    if parts.username or parts.password:
        raise OutboundRefusedError("Credentials in the URL are not accepted; configure them as auth.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise OutboundRefusedError(f"The URL's port is not a number between 0 and 65535: {parts.netloc}.") from exc
    host = parts.hostname.lower().rstrip(".")
    literal = _literal_address(host)
    if literal is None and _is_numeric_form(host):
        raise OutboundRefusedError(f"{host} reads as an IP address in an unusual form; write it as a dotted address.")
    entries = [entry.strip().lower() for entry in allowed_hosts if entry and entry.strip()]
    if not _host_listed(host, port, entries):
        raise OutboundRefusedError(f"{_netloc(host, port)} is not on the allow-list.")
    addresses = [literal] if literal is not None else _resolved(host, port, resolve)
    for address in addresses:
        if (not address.is_global or address.is_multicast) and not _address_listed(address, port, entries):
            raise OutboundRefusedError(
                f"{host} resolves to {address}, a {_kind(address)} address; list the address itself to allow it."
            )
    return str(addresses[0])


def pinned_session(address: str) -> requests.Session:
    """A requests session whose every connection goes to `address` (from check_outbound_url); Host header and TLS
    server name stay the URL's. Proxies from the environment are not used: a proxy would resolve the name again."""
    session = requests.Session()
    session.trust_env = False
    adapter = _PinnedAdapter(address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def outbound_get(url: str, allowed_hosts: Iterable[str], **kwargs) -> requests.Response:
    """GET `url` after check_outbound_url, connected to the checked address, never following a redirect."""
    address = check_outbound_url(url, allowed_hosts)
    with pinned_session(address) as session:
        return session.get(url, allow_redirects=False, **kwargs)


def _literal_address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return _unmapped(address)


def _unmapped(address: Address) -> Address:
    # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_numeric_form(host: str) -> bool:
    """True for names inet_aton would read as an IPv4 address (decimal, octal, hex, fewer than four parts)."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _host_listed(host: str, port: int, entries: list[str]) -> bool:
    names = {host, f"{host}:{port}", f"[{host}]", f"[{host}]:{port}"}
    if any(entry in names for entry in entries):
        return True
    literal = _literal_address(host)
    return literal is not None and _address_listed(literal, port, entries)


def _address_listed(address: Address, port: int, entries: list[str]) -> bool:
    for entry in entries:
        network, entry_port = _network(entry)
        if network is not None and address in network and entry_port in (None, port):
            return True
    return False


def _network(entry: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, int | None]:
    """An allow-list entry read as (network, port or None); (None, None) for a host name."""
    text, port = entry, None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        text, port = inside, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = int(port_text) if port_text.isdigit() else None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None, None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            network = ipaddress.ip_network(mapped)
    return network, port


def _resolved(host: str, port: int, resolve: Resolver) -> list[Address]:
    try:
        answers = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundRefusedError(f"{host} does not resolve.") from exc
    addresses = [_unmapped(ipaddress.ip_address(str(answer[4][0]).split("%")[0])) for answer in answers]
    if not addresses:
        raise OutboundRefusedError(f"{host} does not resolve.")
    return list(dict.fromkeys(addresses))


def _kind(address: Address) -> str:
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-public"


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _pinned_pool(pool_class: type[HTTPConnectionPool], connection_class: type[HTTPConnection], address: str):
    class PinnedConnection(connection_class):
        def _new_conn(self):
            # urllib3 resolves _dns_host on connect; swap in the checked address for that moment only, so the Host
            # header and the TLS server name still use the URL's name.
            name = self._dns_host
            self._dns_host = address
            try:
                return super()._new_conn()
            finally:
                self._dns_host = name

    class PinnedPool(pool_class):
        ConnectionCls = PinnedConnection

    return PinnedPool


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _pinned_pool(HTTPConnectionPool, HTTPConnection, self._address),
            "https": _pinned_pool(HTTPSConnectionPool, HTTPSConnection, self._address),
        }
