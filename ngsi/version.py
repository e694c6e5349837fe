"""`GET /ngsi/version`: Orion's version document, so NGSI clients that check the broker work."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import django
from django.conf import settings

# The Orion release whose NGSI-v2 behaviour this subset follows. Clients compare it with their
# minimum (filip 0.8 wants >= 3.6.0) to decide which API features to use.
ORION_COMPATIBLE_VERSION = "3.12.0"
STARTED_AT = time.time()


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} d, {hours} h, {minutes} m, {secs} s"


@lru_cache(maxsize=1)
def _git_hash() -> str:
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return "nogitversion"  # what Orion itself reports when built outside a git checkout


def version_document() -> dict:
    return {
        "orion": {
            "version": ORION_COMPATIBLE_VERSION,
            "uptime": _uptime(time.time() - STARTED_AT),
            "git_hash": _git_hash(),
            "compile_time": "nodate",
            "compiled_by": "mizumori",
            "compiled_in": f"django-{django.get_version()}",
            "release_date": "nodate",
            "doc": f"https://fiware-orion.rtfd.io/en/{ORION_COMPATIBLE_VERSION}/",
        }
    }
