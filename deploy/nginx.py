"""Render deploy/nginx.conf.template into a directory nginx can run from as any user.

    python deploy/nginx.py --listen 127.0.0.1:8000 --upstream 127.0.0.1:8001 [--public-upstream 127.0.0.1:8002] \
        --prefix var/nginx

writes <prefix>/nginx.conf (and the snippet it includes) and prints the command that starts nginx:
    nginx -p <prefix> -c <prefix>/nginx.conf -e <prefix>/error.log
Used by bin/serve (PROXY=1) and tests/public/test_nginx.py; docs/deployment.md shows the result.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# nginx's add_header in a location replaces the server's, so every block that adds one repeats these.
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "geolocation=(), camera=(), microphone=()"),
    ("Strict-Transport-Security", "max-age=31536000"),  # ignored by browsers on plain http
]


def security_headers(indent: str) -> str:
    # The application sets some of them too: hide its copies so each header is sent once.
    lines = [f"{indent}proxy_hide_header {name};" for name, _ in SECURITY_HEADERS]
    lines += [f'{indent}add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS]
    return "\n".join(lines)


PROXY_HEADERS = [
    ("Host", "$http_host"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("X-Forwarded-Proto", "$scheme"),
]


def proxy_headers(indent: str) -> str:
    return "\n".join(f"{indent}proxy_set_header {name} {value};" for name, value in PROXY_HEADERS)


def site_languages() -> tuple[str, ...]:
    """The codes of settings.LANGUAGES (their one home): the values of `?lang=` and of the language
    cookie the public shell and base map answer to, so the only ones that may be cache keys."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    return tuple(code for code, _ in settings.LANGUAGES)


def front_end_build() -> str:
    """config.build's id of the static files collected (bin/serve renders after collectstatic): part
    of every cache key, so an nginx started with a new deploy never answers with a shell, base map,
    snapshot or unhashed static file (the service worker) it kept for the previous one."""
    site_languages()  # the settings, as above
    import django

    django.setup()
    from config.build import front_end_build as build

    return build()


def language_map(languages: tuple[str, ...], indent: str) -> str:
    # Codes are letters, digits and "-" (Django's language codes): nothing nginx would read otherwise.
    return "\n".join(f"{indent}{code} {code};" for code in languages if re.fullmatch(r"[a-z0-9-]+", code))


PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """${name} from `values` (a missing one is an error); nginx's own $name is left alone."""
    return PLACEHOLDER.sub(lambda match: values[match[1]], template)


def render(
    *,
    listen: str,
    upstream: str,
    prefix: Path,
    public_upstream: str | None = None,
    user: str | None = None,
    client_max_body_size: str = "12m",
    anonymous_rate: str = "10r/s",
    anonymous_connections: int = 64,
    anonymous_sockets: int = 600,
) -> Path:
    """`upstream`: the staff pool; `public_upstream`: the public pool (None: the same processes).
    `user`: whom the worker processes run as when nginx is started as root (they write the cache
    and temporary files under `prefix`, so that user must be able to); None leaves nginx's default
    (the starting user, or nobody under root). The anonymous limits: requests per second per address
    past the cache, requests in flight at once from all of them, websockets held at once."""
    prefix = prefix.resolve()
    for sub in ("tmp", "cache"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    values = {
        "listen": listen,
        "upstream": upstream,
        "public_upstream": public_upstream or upstream,
        "anonymous_rate": anonymous_rate,
        "anonymous_connections": str(anonymous_connections),
        "anonymous_sockets": str(anonymous_sockets),
        "prefix": str(prefix),
        "client_max_body_size": client_max_body_size,
        "user_directive": f"user {user};" if user else "# user: the user who starts nginx",
    }
    snippet = (HERE / "public-cache.conf.template").read_text()
    (prefix / "public-cache.conf").write_text(
        fill(snippet, {**values, "security_headers": security_headers(""), "proxy_headers": proxy_headers("")})
    )
    path = prefix / "nginx.conf"
    config = (HERE / "nginx.conf.template").read_text()
    path.write_text(
        fill(
            config,
            {
                **values,
                "security_headers": security_headers(" " * 8),
                "proxy_headers": proxy_headers(" " * 8),
                "proxy_headers_location": proxy_headers(" " * 12),
                "language_map": language_map(site_languages(), " " * 8),
                "build": front_end_build(),
            },
        )
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port nginx listens on")
    parser.add_argument("--upstream", required=True, help="address:port of the staff pool's ASGI server(s)")
    parser.add_argument("--public-upstream", help="address:port of the public pool (default: --upstream)")
    parser.add_argument("--prefix", required=True, type=Path, help="directory for config, cache, logs, pid")
    parser.add_argument("--user", help="worker user when started as root (must be able to write under --prefix)")
    args = parser.parse_args()
    path = render(
        listen=args.listen, upstream=args.upstream, public_upstream=args.public_upstream, prefix=args.prefix, user=args.user
    )
    print(f"nginx -p {path.parent} -c {path} -e {path.parent}/error.log")


if __name__ == "__main__":
    main()
