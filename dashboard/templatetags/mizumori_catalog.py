"""`{% script_catalog_url LANGUAGE_CODE %}`: the URL of the scripts' translations (dashboard.js_catalog).

Its path is fixed, so the front-end build goes with it (`?v=`, config.build): a page of a new deploy
never runs its scripts with the words of the previous one out of the browser's cache."""

from django import template
from django.urls import reverse

from config.build import front_end_build

register = template.Library()


@register.simple_tag
def script_catalog_url(language: str) -> str:
    return f"{reverse('js-catalog', args=[language])}?v={front_end_build()}"
