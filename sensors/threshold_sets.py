"""The standard threshold ladders of each station kind (DESIGN.md, domain reference): names, labels
and the alert-level equivalent of each step, as data. The demo region builds its stations from them
and a town admin's station form offers them, so a gauge added in the product speaks the same words
as every other one.

A river, reservoir or tide ladder has no national values (each gauge's are set by its river
administrator); JMA's hourly-rain words and their amounts are national, so rain comes with values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .models import StationKind


@dataclass(frozen=True)
class ThresholdSpec:
    name: str
    label_ja: str
    label_en: str
    level: int | None
    value: float | None  # None: no standard value, the station's own must be given
    window: timedelta | None = None

    def with_value(self, value: float) -> "ThresholdSpec":
        return ThresholdSpec(self.name, self.label_ja, self.label_en, self.level, value, self.window)


# The unit every reading and threshold of a kind is in (sensors.models.PHYSICAL_LIMITS assume it).
KIND_UNITS = {StationKind.RIVER: "m", StationKind.RAIN: "mm", StationKind.RESERVOIR: "%", StationKind.TIDE: "m"}

RIVER_LADDER = (
    ThresholdSpec("standby", "水防団待機水位", "Flood-fighting standby", None, None),
    ThresholdSpec("flood_caution", "氾濫注意水位", "Flood caution", 2, None),
    ThresholdSpec("evacuation_decision", "避難判断水位", "Evacuation decision", 3, None),
    ThresholdSpec("flood_danger", "氾濫危険水位", "Flood danger", 4, None),
    ThresholdSpec("flooding", "氾濫発生", "Flooding", 5, None),
)

ONE_HOUR = timedelta(hours=1)
ONE_DAY = timedelta(hours=24)

# JMA's words for hourly rainfall (強い雨 20-30 mm, 激しい雨 30-50, 非常に激しい雨 50-80, 猛烈な雨 80+)
# mapped onto the alert scale, plus 24-hour totals that in hilly basins bring landslides.
RAIN_THRESHOLDS = (
    ThresholdSpec("rain_1h_strong", "強い雨（1時間）", "Heavy rain (1 h)", 2, 20.0, ONE_HOUR),
    ThresholdSpec("rain_1h_intense", "激しい雨（1時間）", "Intense rain (1 h)", 3, 30.0, ONE_HOUR),
    ThresholdSpec("rain_1h_very_intense", "非常に激しい雨（1時間）", "Very intense rain (1 h)", 4, 50.0, ONE_HOUR),
    ThresholdSpec("rain_1h_violent", "猛烈な雨（1時間）", "Violent rain (1 h)", 5, 80.0, ONE_HOUR),
    ThresholdSpec("rain_24h_heavy", "大雨（24時間）", "Heavy rain (24 h)", 3, 150.0, ONE_DAY),
    ThresholdSpec("rain_24h_extreme", "記録的な大雨（24時間）", "Extreme rain (24 h)", 4, 250.0, ONE_DAY),
)

# Storage rate (貯水率) in percent of the volume at 常時満水位, so the flood pocket is above 100 %.
#
# - 常時満水位 (100 %) -> level 2: the reservoir can take no more without releasing (dam: 放流
#   notices downstream; pond: the spillway starts to run). Watch.
# - 洪水時満水位 (dam: サーチャージ水位) -> level 3: the flood pocket is full. A dam moves towards
#   異常洪水時防災操作 (outflow = inflow) and a pond's spillway runs at its design capacity, so
#   people who need time should leave the areas below now.
# - 堤頂越流 (water over the embankment crest) -> level 4: an embankment may breach within minutes.
# Level 5 is declared on observed flooding or a breach, which a storage gauge cannot see, so no
# storage value maps to it.
RESERVOIR_LADDER = (
    ThresholdSpec("normal_full", "常時満水位", "Normal full water level", 2, 100.0),
    ThresholdSpec("flood_full", "洪水時満水位", "Flood full water level", 3, None),
    ThresholdSpec("crest_overflow", "堤頂越流", "Overtopping the crest", 4, None),
)

# A coastal tide gauge's 高潮 ladder, in metres above the station's datum (usually T.P.).
TIDE_LADDER = (
    ThresholdSpec("storm_surge_caution", "高潮注意潮位", "Storm surge caution", 2, None),
    ThresholdSpec("storm_surge_alert", "高潮警戒潮位", "Storm surge alert", 3, None),
    ThresholdSpec("storm_surge_danger", "高潮危険潮位", "Storm surge danger", 4, None),
)

STANDARD_LADDERS: dict[str, tuple[ThresholdSpec, ...]] = {
    StationKind.RIVER: RIVER_LADDER,
    StationKind.RAIN: RAIN_THRESHOLDS,
    StationKind.RESERVOIR: RESERVOIR_LADDER,
    StationKind.TIDE: TIDE_LADDER,
}


def standard_ladder(kind: str) -> tuple[ThresholdSpec, ...]:
    """The standard thresholds of a station kind, lowest first (KeyError for an unknown kind)."""
    return STANDARD_LADDERS[StationKind(kind)]


def _valued(ladder: tuple[ThresholdSpec, ...], values: tuple[float, ...]) -> tuple[ThresholdSpec, ...]:
    return tuple(spec.with_value(value) for spec, value in zip(ladder, values, strict=True))


def river_thresholds(standby: float, caution: float, evacuation: float, danger: float, flooding: float):
    """The national five-step scale for one river gauge, in metres of stage."""
    return _valued(RIVER_LADDER, (standby, caution, evacuation, danger, flooding))


def reservoir_thresholds(flood_full: float, crest: float):
    return _valued(RESERVOIR_LADDER, (100.0, flood_full, crest))


def tide_thresholds(caution: float, alert: float, danger: float):
    return _valued(TIDE_LADDER, (caution, alert, danger))
