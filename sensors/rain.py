"""Rain judged as the weather agency judges it: by the 1-hour total, in JMA's intensity words.

A point rainfall is never an evacuation level (no official scheme maps one to 警戒レベル); JMA
describes hourly rain by intensity (雨の強さと降り方): 強い雨 20–30 mm, 激しい雨 30–50, 非常に激しい雨
50–80, 猛烈な雨 80 and more. Rain gauges are shown with these words, their headline the 1-hour total
with the latest 10-minute amount beside it. Totals over 3 h, 24 h or the storm are thresholds a town
configures (sensors.Threshold with a window), judged by the alert rules for HQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

HOUR = timedelta(hours=1)
HOUR_KEY = str(int(HOUR.total_seconds()))  # the key of StationState.accumulations


@dataclass(frozen=True)
class RainIntensity:
    key: str
    lower_mm: float  # 1-hour total at or above which this category applies
    name_ja: str
    name_en: str
    advice_ja: str
    advice_en: str


# Highest first. Below 20 mm an hour JMA names no category: "雨" (or "降雨なし" with none at all).
RAIN_INTENSITIES = (
    RainIntensity("torrential", 80, "猛烈な雨", "Torrential rain",
                  "息苦しくなるような 雨です。大きな災害に 気をつけてください。",
                  "Rain so heavy it is hard to breathe: watch for major disasters."),
    RainIntensity("extremely_heavy", 50, "非常に激しい雨", "Extremely heavy rain",
                  "滝のように ふる 雨です。外に 出ないでください。", "Rain like a waterfall: stay indoors."),
    RainIntensity("very_heavy", 30, "激しい雨", "Very heavy rain",
                  "バケツを ひっくり返したような 雨です。川や がけに 近づかないでください。",
                  "Rain like buckets: keep away from rivers and slopes."),
    RainIntensity("heavy", 20, "強い雨", "Heavy rain",
                  "どしゃぶりの 雨です。川や 水路に 近づかないでください。",
                  "Downpour: keep away from rivers and channels."),
    RainIntensity("rain", 0.5, "雨", "Rain", "雨が ふっています。", "It is raining."),
    RainIntensity("dry", 0, "降雨なし", "No rain", "この1時間 雨は ほとんど ありません。",
                  "Little or no rain in the last hour."),
)


def rain_intensity(hour_total: float | None) -> RainIntensity | None:
    """The intensity category of a 1-hour total (mm); None without a total."""
    if hour_total is None:
        return None
    return next(category for category in RAIN_INTENSITIES if hour_total >= category.lower_mm)
