"""The front-end build: one short id for the static files and script translations this process serves.

A page names its scripts by content-hashed URLs (settings.STORAGES), but some of what it loads has a
fixed URL: the service worker (it must keep its URL to stay registered), the scripts' translations
(/i18n/catalog/<language>.js) and the public base map (/public/basemap.js). Those carry this id —
the worker as its cache name, the others as `?v=` for the browser's cache — so a deploy that changes
any front-end file is a new id everywhere, and nothing of two deploys meets in one browser.

With hashed URLs the id is the manifest's own hash (collectstatic writes it); without them (tests,
DEBUG) a digest of the files themselves. Either way every process serving the same files agrees.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage

LENGTH = 12


@functools.cache
def front_end_build() -> str:
    digest = hashlib.sha256()
    manifest_hash = getattr(staticfiles_storage, "manifest_hash", "")
    if manifest_hash and not settings.DEBUG:
        digest.update(f"manifest:{manifest_hash}\n".encode())
    else:
        for finder in finders.get_finders():
            for path, storage in sorted(finder.list(["CVS", ".*", "*~"]), key=lambda item: item[0]):
                with storage.open(path) as handle:
                    digest.update(f"{path}\n".encode())
                    digest.update(hashlib.sha256(handle.read()).digest())
    for catalog in sorted(Path(directory) for directory in settings.LOCALE_PATHS):
        for compiled in sorted(catalog.glob("*/LC_MESSAGES/djangojs.mo")):
            digest.update(f"{compiled.relative_to(catalog)}\n".encode())
            digest.update(hashlib.sha256(compiled.read_bytes()).digest())
    return digest.hexdigest()[:LENGTH]


def forget() -> None:
    """For tests that change the static storage: the next call works the id out again."""
    front_end_build.cache_clear()
