"""The words of the warning levels, from the versioned `LevelScheme`: the one source of both vocabularies.

- `gauge_words(level)`: what a *gauge* says — equivalent information, 「警戒レベル4相当」, the threshold
  reached and plain-language advice. Every gauge state and gauge alert (map, legend, cards, station
  page, board, e-mail, CAP, Atom, NGSI, API) speaks with these.
- `order_words(level)`: what a *town's evacuation order* says — 高齢者等避難 / 避難指示 / 緊急安全確保 and
  what it asks. Only orders a town issues use these.

Both read the active scheme unless given one (an alert keeps the scheme it was issued with). A
scheme's words are loaded once per process and version: a new wording is a new scheme version made
active (`alerts.services.level_scheme_activate`), not an edit of the old one; an edit in this
process clears the cache (`alerts.apps`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import LevelDefinition, LevelScheme

# Words only a town (orders) or the weather agency (警報) may use: never in a gauge's state or alert.
RESERVED_WORDS = ("高齢者等避難", "避難指示", "緊急安全確保", "警報")


@dataclass(frozen=True)
class GaugeWords:
    level: int
    name_ja: str
    name_en: str
    reached_ja: str
    reached_en: str
    advice_ja: str
    advice_en: str


@dataclass(frozen=True)
class OrderWords:
    level: int
    name_ja: str
    name_en: str
    action_ja: str
    action_en: str


@dataclass(frozen=True)
class SchemeWords:
    version: str
    gauge: dict[int, GaugeWords]
    order: dict[int, OrderWords]


_cache: dict[str, SchemeWords] = {}


def _words_of(version: str, definitions) -> SchemeWords:
    gauge, order = {}, {}
    for d in definitions:
        # A scheme without gauge wording still never lends its order words to a gauge.
        gauge[d.level] = GaugeWords(
            d.level,
            d.gauge_name_ja or f"警戒レベル{d.level}相当",
            d.gauge_name_en or f"Level {d.level} equivalent",
            d.gauge_reached_ja,
            d.gauge_reached_en,
            d.gauge_advice_ja,
            d.gauge_advice_en,
        )
        order[d.level] = OrderWords(d.level, d.name_ja, d.name_en, d.action_ja, d.action_en)
    return SchemeWords(version, gauge, order)


def scheme_words(scheme: LevelScheme | None = None) -> SchemeWords | None:
    """The words of `scheme` (None: the active one), cached per version; None without any scheme."""
    if scheme is None:
        definitions = list(LevelDefinition.objects.filter(scheme__is_active=True).select_related("scheme"))
        if not definitions:
            return None
        version = definitions[0].scheme.version
        if version not in _cache:
            _cache[version] = _words_of(version, definitions)
        return _cache[version]
    if scheme.version not in _cache:
        _cache[scheme.version] = _words_of(scheme.version, scheme.levels.all())
    return _cache[scheme.version]


def gauge_words(level: int, scheme: LevelScheme | None = None) -> GaugeWords:
    """A gauge state's words for `level` (1–5) in `scheme` (None: the active one). Without a scheme
    (or without that level in it) the bare 「警戒レベルN相当」: never an order's words."""
    words = scheme_words(scheme)
    found = words.gauge.get(level) if words else None
    return found or GaugeWords(level, f"警戒レベル{level}相当", f"Level {level} equivalent", "", "", "", "")


def order_words(level: int | None, scheme: LevelScheme | None = None) -> OrderWords | None:
    """A town's evacuation-order words for `level` in `scheme` (None: the active one). Orders only."""
    words = scheme_words(scheme)
    return words.order.get(level) if words and level is not None else None


def forget_cached_words(**_) -> None:
    """Signal receiver: a level definition was edited in this process; read the words again."""
    _cache.clear()


# What happened to an alert, in both languages: CAP, e-mail, board, history and CSV speak alike.
EVENT_KIND_WORDS = {
    "opened": ("発表", "issued"),
    "escalated": ("引き上げ", "raised"),
    "deescalated": ("引き下げ", "lowered"),
    "resolved": ("解除", "ended"),
    "acknowledged": ("確認", "acknowledged"),
    "note": ("メモ", "note"),
}
# Where an alert stands (Alert.State) and what kind of rule raised it (AlertRule.Kind), for people.
ALERT_STATE_WORDS = {
    "open": ("未確認", "open"),
    "acknowledged": ("確認済み", "acknowledged"),
    "resolved": ("解除済み", "resolved"),
}
RULE_KIND_WORDS = {
    "threshold": ("基準値超過", "threshold"),
    "rate_of_rise": ("急上昇", "rapid rise"),
    "rain_accumulation": ("雨量", "rainfall"),
    "stale": ("欠測", "not reporting"),
}
