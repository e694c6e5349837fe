"""The static files storage: WhiteNoise's content-hashed names, precompressed (settings.STORAGES).

Pages name `mizumori/public.4f2a9c1e07b3.js`, read from the manifest collectstatic writes into
STATIC_ROOT (docs/deployment.md). Where collectstatic never ran (no manifest at all: a bench script
or `runserver` on a fresh checkout), names stay as they are and WhiteNoise serves the source files
(WHITENOISE_USE_FINDERS), as before hashing — with one warning per process, since a deployment
without the manifest is back to browsers mixing one deploy's cached scripts with another's pages.
"""

from __future__ import annotations

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger(__name__)


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    warned = False

    def stored_name(self, name):
        if not self.manifest_hash:
            if not StaticFilesStorage.warned:
                StaticFilesStorage.warned = True
                logger.warning(
                    "No staticfiles manifest in %s: static URLs are not content-hashed. Run "
                    "`manage.py collectstatic` before starting the application.",
                    self.location,
                )
            return name
        return super().stored_name(name)
