"""The page scripts' translations: Django's JavaScriptCatalog (djangojs.po), one URL per language.

Why this and not a catalog embedded in each page: the catalog is the same for every page and user
of a language, so with the language in the URL it is one cacheable file per language (browsers and
the nginx in front keep it) instead of bytes repeated in every HTML response, and it is served by
this site — no external request. The scripts call the `gettext` / `interpolate` it defines.
"""

from django.conf import settings
from django.http import Http404
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.views.i18n import JavaScriptCatalog

# Translations change only with a deploy; an hour keeps a deploy's new words from waiting long.
CATALOG_MAX_AGE = 3600


class LanguageCatalog(JavaScriptCatalog):
    domain = "djangojs"

    def get(self, request, *args, language: str, **kwargs):
        if language not in dict(settings.LANGUAGES):
            raise Http404("No such language.")
        with translation.override(language):
            response = super().get(request, *args, **kwargs)
        patch_cache_control(response, public=True, max_age=CATALOG_MAX_AGE)
        return response
