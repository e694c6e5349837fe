"""Template side of config.i18n (a builtin in settings.TEMPLATES): data kept per language, shown in
the page's language.

    {{ station|localized:"name" }}     station.name_<language>, else name_ja
    {{ advice|localized }}             advice["<language>"] (or .<language>), else the "ja" one
    {{ words|pick }}                   one word of a (ja, en) pair from alerts.vocabulary and friends
"""

from django import template

from . import i18n

register = template.Library()


@register.filter
def localized(source, field: str = "") -> str:
    return i18n.localized(source, field) if source is not None else ""


@register.filter
def pick(pair) -> str:
    return i18n.pick(pair) if pair else ""
