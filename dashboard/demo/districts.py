"""The FICTIONAL demo region's evacuation districts and each town's trigger table (its
避難情報の判断・伝達マニュアル as data). Every town has four districts: an upper and a lower reach,
each split at the river into its north and south bank. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from orders.models import District, TriggerRule
from sensors.models import Station
from tenancy.models import Municipality

from .region import COAST, CORE, UP, _main_river_v, _polygon

STEP_U = 0.01


@dataclass(frozen=True)
class DistrictSpec:
    code: str
    name_ja: str
    name_en: str
    town: str
    u_from: float
    u_to: float
    bank: int  # +1 north of the main river, -1 south

    @property
    def geometry(self) -> dict:
        steps = max(1, round((self.u_to - self.u_from) / STEP_U))
        us = [self.u_from + (self.u_to - self.u_from) * i / steps for i in range(steps + 1)]
        river = [(u, _main_river_v(u)) for u in us]
        ridge = [(u, 0.97 * self.bank) for u in us]
        lower, upper = (river, ridge) if self.bank > 0 else (ridge, river)
        ring = lower + list(reversed(upper))
        ring.append(ring[0])
        return _polygon(ring)


def _four(prefix: str, town: str, u_from: float, u_mid: float, u_to: float, names: tuple[tuple[str, str], ...]):
    reaches = ((u_from, u_mid), (u_mid, u_to))
    specs = []
    for index, ((low, high), bank) in enumerate(((reach, bank) for reach in reaches for bank in (+1, -1))):
        name_ja, name_en = names[index]
        specs.append(DistrictSpec(f"{prefix}-{index + 1:02d}", name_ja, name_en, town, low, high, bank))
    return specs


DISTRICTS: tuple[DistrictSpec, ...] = (
    *_four("OKU", UP, 0.0, 0.17, 0.33, (("本郷地区", "Hongo"), ("峠下地区", "Togeshita"), ("滝見北地区", "Takimi North"), ("滝見南地区", "Takimi South"))),
    *_four("MDG", CORE, 0.38, 0.54, 0.70, (("中川原地区", "Nakagawara"), ("中央地区", "Chuo"), ("北町地区", "Kitamachi"), ("南台地区", "Minamidai"))),
    *_four("MDH", COAST, 0.74, 0.86, 0.98, (("下翠地区", "Shimomidori"), ("役場通地区", "Yakubadori"), ("潮見地区", "Shiomi"), ("高台地区", "Takadai"))),
)


@dataclass(frozen=True)
class TriggerSpec:
    town: str
    station: str
    threshold: str
    level: int
    districts: tuple[str, ...]
    forecast_minutes: int | None = None


# The coast decides on the core city's tributary gauge it is shared (SWI-F01) and its own gauges;
# the core city on its own main-river gauges; the hills on theirs.
TRIGGERS: tuple[TriggerSpec, ...] = (
    TriggerSpec(COAST, "SWI-F01", "evacuation_decision", 3, ("MDH-01", "MDH-02"), forecast_minutes=60),
    TriggerSpec(COAST, "SWI-F01", "flood_danger", 4, ("MDH-01", "MDH-02")),
    TriggerSpec(COAST, "KWS-R08", "evacuation_decision", 3, ("MDH-01", "MDH-02", "MDH-03")),
    TriggerSpec(COAST, "KWS-R08", "flood_danger", 4, ("MDH-01", "MDH-02", "MDH-03")),
    TriggerSpec(CORE, "KWS-R05", "evacuation_decision", 3, ("MDG-01", "MDG-02"), forecast_minutes=60),
    TriggerSpec(CORE, "KWS-R05", "flood_danger", 4, ("MDG-01", "MDG-02")),
    TriggerSpec(CORE, "KWS-R07", "flood_danger", 4, ("MDG-03", "MDG-04")),
    TriggerSpec(UP, "KWS-R03", "evacuation_decision", 3, ("OKU-03", "OKU-04")),
    TriggerSpec(UP, "KWS-R03", "flood_danger", 4, ("OKU-03", "OKU-04")),
)


def demo_districts_upsert(towns: dict[str, Municipality]) -> list[District]:
    districts = []
    for spec in DISTRICTS:
        district, _ = District.objects.update_or_create(
            code=spec.code,
            defaults={"municipality": towns[spec.town], "name_ja": spec.name_ja, "name_en": spec.name_en,
                      "geometry": spec.geometry},
        )
        districts.append(district)
    return districts


def demo_trigger_rules_upsert(towns: dict[str, Municipality], stations: dict[str, Station]) -> list[TriggerRule]:
    by_code = {district.code: district for district in District.objects.filter(code__in=[c for t in TRIGGERS for c in t.districts])}
    rules = []
    for spec in TRIGGERS:
        rule, _ = TriggerRule.objects.update_or_create(
            municipality=towns[spec.town], station=stations[spec.station], threshold=spec.threshold, level=spec.level,
            defaults={"forecast_minutes": spec.forecast_minutes, "is_active": True},
        )
        rule.districts.set([by_code[code] for code in spec.districts])
        rules.append(rule)
    return rules
