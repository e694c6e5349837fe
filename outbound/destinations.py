"""Where outbound requests may go: settings.OUTBOUND_ALLOWED_HOSTS, one list for every kind.

A webhook or a subscription makes the platform send HTTP requests to a URL a client chose; without
a policy it would reach whatever the server can reach (cloud metadata at 169.254.169.254, databases,
the admin on localhost). The rule:

- http or https only, no credentials in the URL (userinfo also hides the real host, as in
  `http://allowed@127.0.0.1/`), no whitespace, control characters or backslashes;
- the host (any port) or host:port must be listed; `*` lists every host;
- an address that is not public (private, loopback, link-local, multicast, reserved, unspecified,
  shared/CGNAT; IPv4 and IPv6, IPv4-mapped and 6to4/Teredo embedded IPv4 included) must itself be
  listed explicitly (`*` does not cover it), whether it is written as an IP or a name resolves to
  it. IPv4 spellings other than the dotted quad (`2130706433`, `0x7f.1`, `0177.0.0.1`, which the
  resolver reads as 127.0.0.1) are refused outright. Names are resolved when a destination is saved and again before
  every delivery, and `outbound.http` connects only to the addresses that were checked.

settings.NGSI_NOTIFY_ALLOWED_HOSTS, the older name, is read as part of the same list.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
SETTING = "OUTBOUND_ALLOWED_HOSTS"
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
# What inet_aton reads as an IPv4 address: 1 to 4 parts, decimal, octal (leading 0) or hex (0x).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestination(ValueError):
    """The URL may not receive requests from the platform; the message says why."""


def _allow_list() -> list[tuple[str, int | None]]:
    entries = []
    raw_entries = [*getattr(settings, SETTING, ()), *getattr(settings, "NGSI_NOTIFY_ALLOWED_HOSTS", ())]
    for raw in raw_entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            entries.append(("*", None))
            continue
        if entry.startswith("["):  # [v6] or [v6]:port
            host, _, rest = entry[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        else:  # a name, an IPv4 address, or a bare IPv6 address
            host, port = entry, ""
        entries.append((host, int(port) if port.isdigit() else None))
    return entries


def _listed(host: str, port: int, *, wildcard: bool) -> bool:
    for listed_host, listed_port in _allow_list():
        if listed_host == "*":
            if wildcard:
                return True
            continue
        if listed_host == host and (listed_port is None or listed_port == port):
            return True
    return False


def as_address(host: str) -> Address | None:
    """The IP address `host` names as a literal, in any spelling the resolver accepts; None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return embedded
    return address


def is_public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [ip for ip in (as_address(info[4][0].split("%")[0]) for info in infos) if ip is not None]


def _parts(url) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable-looking URL, or RefusedDestination."""
    if not isinstance(url, str) or not url:
        raise RefusedDestination("the URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise RefusedDestination(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHARACTERS.search(url):
        raise RefusedDestination("the URL contains whitespace, control characters or backslashes")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RefusedDestination(f"scheme {scheme or '(none)'!r} is not allowed: use http or https")
    if "@" in parts.netloc:
        raise RefusedDestination("credentials in the URL are not allowed (send them as headers)")
    host = (parts.hostname or "").lower()
    if host.endswith(".") and ":" not in host:
        host = host[:-1]  # "localhost." is localhost: the same for listing and resolving
    if not host:
        raise RefusedDestination("the URL has no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise RefusedDestination("the URL has an invalid port") from None
    return scheme, host, port


def checked_addresses(url, *, resolve_names: bool = True) -> list[Address]:
    """The addresses `url` may be reached at (empty for a name not resolved, or not resolvable);
    RefusedDestination when the policy refuses it."""
    _, host, port = _parts(url)
    address = as_address(host)
    shown = f"{host}:{port}"
    if address is not None and ":" not in host and host != str(address):
        # 2130706433, 0x7f.1, 0177.0.0.1: only ever written to slip past a check.
        raise RefusedDestination(f"{host} is the IP address {address} in an unusual spelling; write {address}")
    if address is not None:
        if is_public(address):
            if not _listed(host, port, wildcard=True) and not _listed(str(address), port, wildcard=True):
                raise RefusedDestination(f"{shown} is not listed in {SETTING}")
        elif not _listed(str(address), port, wildcard=False) and not _listed(host, port, wildcard=False):
            raise RefusedDestination(f"{shown} is a non-public address and is not listed in {SETTING}")
        return [address]
    if not _listed(host, port, wildcard=True):
        raise RefusedDestination(f"{shown} is not listed in {SETTING}")
    if not resolve_names:
        return []
    addresses = resolve(host, port)  # none: nothing to connect to, which the sender reports
    for resolved in addresses:
        # Listing a name does not cover the inside: a listed name later pointed at 127.0.0.1 stays refused.
        if not is_public(resolved) and not _listed(str(resolved), port, wildcard=False):
            raise RefusedDestination(f"{host} resolves to the non-public address {resolved}, which is not listed in {SETTING}")
    return addresses


def destination_problem(url, *, resolve_names: bool = True) -> str | None:
    """Why `url` may not receive requests from the platform, or None when it may."""
    try:
        checked_addresses(url, resolve_names=resolve_names)
    except RefusedDestination as exc:
        return str(exc)
    return None
