"""Query-parameter parsing shared by the REST endpoints: one reading of "an integer in a range", "one
of these words", "a town's slug" and "a 0/1 flag", each refusing bad input with a 400 that names the
parameter and says what it must be.

Integers are ASCII digits only: Python's int() would also take " 12", "1_000" and full-width "１２",
which no client means to send and which would make two spellings of one cache key.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError

# Longer than any integer a parameter may hold (2**63 has 19 digits): refused before converting.
MAX_INTEGER_DIGITS = 19
MAX_SLUG_LENGTH = 40


def int_param(query, name: str, *, low: int, high: int, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    digits = raw[1:] if raw[:1] == "-" else raw
    if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_INTEGER_DIGITS:
        raise ValidationError({name: f"Must be an integer between {low} and {high}."})
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low} and {high}."})
    return value


def choice_param(query, name: str, choices, *, default: str | None = None) -> str | None:
    value = query.get(name) or None
    if value is None:
        return default
    if value not in choices:
        raise ValidationError({name: f"Must be one of {', '.join(choices)}."})
    return value


def slug_param(query, name: str = "municipality") -> str | None:
    """A town's slug as a filter (an unknown one simply matches nothing)."""
    slug = query.get(name) or None
    if slug is not None and (len(slug) > MAX_SLUG_LENGTH or not slug.isprintable()):
        raise ValidationError({name: "Must be a town's slug."})
    return slug


def flag_param(query, name: str) -> bool:
    """`1` on, `0` or absent off."""
    raw = query.get(name)
    if raw not in (None, "", "0", "1"):
        raise ValidationError({name: "Must be 1 or 0."})
    return raw == "1"
