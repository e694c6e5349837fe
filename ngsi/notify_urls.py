"""Where subscription notifications may go: settings.NGSI_NOTIFY_ALLOWED_HOSTS, nothing else.

A subscription makes the platform send HTTP requests to a URL a client chose, so without a policy
it would reach whatever the server can reach (metadata services, databases, the admin on
localhost). The rule:

- http or https only, no credentials in the URL (use httpCustom headers for those);
- the host (any port) or host:port must be listed; `*` lists every host;
- an address that is not public (private, loopback, link-local, reserved, CGNAT...) must itself be
  listed explicitly (`*` does not cover it), whether it is written as an IP or a name resolves to
  it. Names are resolved when the subscription is written and again before every delivery, so a
  listed name later pointed inside is refused too. Redirects are never followed (see services).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")


def _allow_list() -> list[tuple[str, int | None]]:
    entries = []
    for raw in settings.NGSI_NOTIFY_ALLOWED_HOSTS:
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


def _as_ip(host: str):
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_public(address) -> bool:
    return address.is_global and not address.is_multicast


def _resolved(host: str, port: int) -> list:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [ip for ip in (_as_ip(info[4][0].split("%")[0]) for info in infos) if ip is not None]


def notification_url_problem(url, *, resolve: bool = True) -> str | None:
    """Why `url` may not receive notifications, or None when it may."""
    if not isinstance(url, str) or not url:
        return "the notification URL must be a non-empty string"
    if len(url) > MAX_URL_LENGTH:
        return f"the notification URL is longer than {MAX_URL_LENGTH} characters"
    if _UNSAFE_CHARACTERS.search(url):
        return "the notification URL contains whitespace, control characters or backslashes"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return f"scheme {scheme or '(none)'!r} is not allowed for notifications: use http or https"
    if "@" in parts.netloc:
        return "credentials in the notification URL are not allowed (send them as httpCustom headers)"
    host = (parts.hostname or "").lower()
    if not host:
        return "the notification URL has no host"
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return "the notification URL has an invalid port"
    address = _as_ip(host)
    shown = f"{host}:{port}"
    if address is not None and not _is_public(address):
        if not _listed(str(address), port, wildcard=False) and not _listed(host, port, wildcard=False):
            return f"{shown} is a non-public address and is not listed in NGSI_NOTIFY_ALLOWED_HOSTS"
        return None
    if not _listed(host, port, wildcard=True):
        return f"{shown} is not listed in NGSI_NOTIFY_ALLOWED_HOSTS"
    if address is None and resolve:
        for resolved in _resolved(host, port):
            if not _is_public(resolved) and not _listed(str(resolved), port, wildcard=False):
                return f"{host} resolves to the non-public address {resolved}, which is not listed in NGSI_NOTIFY_ALLOWED_HOSTS"
    return None
