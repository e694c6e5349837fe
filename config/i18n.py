"""Which language a page speaks, and how text kept per language *as data* is shown in it.

Two kinds of text, two homes:
- UI strings (labels, headings, messages) are gettext: `{% translate %}` / `gettext` with English
  msgids, translated in `locale/<language>/LC_MESSAGES/django.po` (docs/i18n.md).
- Data kept per language — model columns (`name_ja` / `name_en`), the level and event words of
  `alerts.vocabulary` (contract words: 「警戒レベル4相当」, 氾濫危険水位 …) and other `(ja, en)` pairs —
  is shown through `localized()` / `pick()` here and nowhere else, so a new language is one more
  column (or key) read by these two functions. Missing in the active language: Japanese, the language
  every town writes in; the API keeps returning every language's field as it does today.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.translation import get_language

# Japanese is what every town writes in and what the legal words are defined in.
FALLBACK_LANGUAGE = "ja"


def field_suffixes(language: str | None = None) -> tuple[str, ...]:
    """The attribute suffixes to try for `language` (None: the active one), best first, ending in
    Japanese: "zh-hans" → ("zh_hans", "zh", "ja"); "en-us" → ("en_us", "en", "ja")."""
    code = (language or get_language() or FALLBACK_LANGUAGE).lower().replace("-", "_")
    suffixes = [code, code.split("_")[0], FALLBACK_LANGUAGE]
    return tuple(dict.fromkeys(suffixes))


def localized(source, field: str = "", language: str | None = None) -> str:
    """`source`'s `field` in the active language: attribute (or mapping key) `<field>_<language>`,
    falling back to `<field>_ja`; "" when neither is set. `localized(station, "name")`; without a
    field the attribute or key is the language itself (`{"ja": …, "en": …}`, `trend.ja`)."""
    for suffix in field_suffixes(language):
        name = f"{field}_{suffix}" if field else suffix
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if value not in (None, ""):
            return value
    return ""


def pick(pair: Sequence[str], language: str | None = None) -> str:
    """One word of a `(ja, en)` pair (the word tables of `alerts.vocabulary` and friends) for the
    active language, by the same rule as `localized`."""
    ja, en = pair
    return localized({"text_ja": ja, "text_en": en}, "text", language)
