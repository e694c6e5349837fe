"""nginx from deploy/nginx.conf.template in front of test servers (tests/public/test_nginx.py and
the public page's browser test). Needs Debian's nginx: without it the caller skips, or fails under
MIZUMORI_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
import nginx as nginx_config  # noqa: E402  (deploy/nginx.py: not a package)


def services_required() -> bool:
    return os.environ.get("MIZUMORI_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        message = "nginx is not installed (Debian package nginx)"
        if services_required():
            pytest.fail(f"MIZUMORI_REQUIRE_SERVICES=1 and {message}", pytrace=False)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def nginx_in_front(directory: Path, *, upstream: int, public_upstream: int | None = None, **limits):
    """Yields (proxy url, nginx prefix) for nginx in front of the staff pool on port `upstream` and
    the public pool on `public_upstream` (None: the same server); stopped on exit."""
    binary = nginx_binary()
    port = free_port()
    config = nginx_config.render(
        listen=f"127.0.0.1:{port}",
        upstream=f"127.0.0.1:{upstream}",
        public_upstream=f"127.0.0.1:{public_upstream}" if public_upstream else None,
        prefix=directory / "nginx",
        # Started as root (a container), the workers would be nobody, who cannot write into tmp_path.
        user="root" if os.geteuid() == 0 else None,
        **limits,
    )
    with open(directory / "nginx.out", "w") as log:
        proxy = subprocess.Popen(
            [binary, "-p", str(config.parent), "-c", str(config), "-e", str(config.parent / "error.log")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proxy.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("nginx did not start: " + (directory / "nginx.out").read_text()
                                    + (config.parent / "error.log").read_text(errors="replace"))
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}", config.parent
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)


def access_log(prefix: Path, path: str, *, at_least: int = 1, timeout: float = 5.0) -> list[str]:
    """nginx's access-log lines for `path` (any query string), once there are `at_least` of them or
    `timeout` has passed: nginx writes a request's line after the client has its response, so a
    test that reads the log right after a request can be ahead of it."""
    deadline = time.monotonic() + timeout
    while True:
        lines = (prefix / "access.log").read_text().splitlines()
        found = [line for line in lines if f" {path} " in line or f" {path}?" in line]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
