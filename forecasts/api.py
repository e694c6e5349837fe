"""GET /api/v1/stations/<code>/forecast — the gauge's current forecast, for whoever may see the gauge."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from sensors.api import HasIngestToken
from sensors.models import Station
from sensors.selectors import local_iso
from tenancy.authentication import BearerTokenAuthentication
from tenancy.selectors import viewer_for_request

from . import learn, predict
from .models import Method
from .selectors import FORECAST_KINDS, forecast_for_viewer

METHOD_NOTES = {
    Method.ARX: ("過去の観測から学習したモデル(上流の水位と流域雨量)による予測", "Learned from this gauge's history, upstream gauges and basin rain"),
    Method.TREND: (
        "学習に足る履歴がないため、直近1時間の傾向を延長した参考値",
        "Too little history for a learned model: the last hour's straight-line trend, extended",
    ),
}
NOT_AN_OBSERVATION = (
    "予測値です。観測値ではなく、不確かさを含みます。避難の判断は市町村の発表に従ってください。",
    "A forecast, not an observation, and uncertain. Evacuation decisions are the town's announcements.",
)

POINT_FIELDS = (
    "ForecastPoint",
    {
        "time": serializers.DateTimeField(),
        "median": serializers.FloatField(),
        "lower": serializers.FloatField(help_text="10 % quantile"),
        "upper": serializers.FloatField(help_text="90 % quantile"),
    },
)
CROSSING_FIELDS = (
    "ForecastCrossing",
    {
        "threshold": serializers.CharField(),
        "label_ja": serializers.CharField(),
        "label_en": serializers.CharField(),
        "level": serializers.IntegerField(),
        "value": serializers.FloatField(),
        "at": serializers.DateTimeField(allow_null=True, help_text="When the median reaches it."),
        "earliest": serializers.DateTimeField(allow_null=True, help_text="When the upper bound reaches it."),
        "latest": serializers.DateTimeField(allow_null=True, help_text="When the lower bound reaches it; null: not within the horizon."),
        "text_ja": serializers.CharField(),
        "text_en": serializers.CharField(),
    },
)
FORECAST_RAIN_SKILL_FIELDS = (
    "ForecastSkillWithForecastRain",
    {
        "nse": serializers.FloatField(allow_null=True),
        "rmse": serializers.FloatField(allow_null=True, help_text="On the training rows that had a forecast-rain issue."),
        "readings_only_rmse": serializers.FloatField(allow_null=True, help_text="The model of readings alone on the same rows."),
        "persistence_rmse": serializers.FloatField(allow_null=True),
        "trend_rmse": serializers.FloatField(allow_null=True),
        "rows": serializers.IntegerField(),
        "serves": serializers.BooleanField(help_text="Chosen for this lead when a forecast-rain issue is current."),
    },
)
SKILL_FIELDS = (
    "ForecastSkill",
    {
        "lead_minutes": serializers.IntegerField(),
        "nse": serializers.FloatField(allow_null=True),
        "rmse": serializers.FloatField(allow_null=True),
        "persistence_rmse": serializers.FloatField(allow_null=True),
        "trend_rmse": serializers.FloatField(allow_null=True, required=False),
        "shown": serializers.BooleanField(help_text="The model of readings beat persistence and the trend at this lead."),
        "forecast_rain": inline_serializer(*FORECAST_RAIN_SKILL_FIELDS, allow_null=True, required=False),
        "served_by": serializers.ChoiceField(
            choices=learn.VARIANT_NAMES, allow_null=True,
            help_text="Which model made this lead of the current forecast; null: not shown (no model beat persistence and the trend).",
        ),
    },
)
NOT_SHOWN_FIELDS = (
    "ForecastLeadsNotShown",
    {
        "minutes": serializers.ListField(child=serializers.FloatField(), help_text="The leads not shown (minutes ahead)."),
        "text_ja": serializers.CharField(),
        "text_en": serializers.CharField(),
    },
)
FORECAST = inline_serializer(
    "StationForecast",
    {
        "station": serializers.CharField(),
        "unit": serializers.CharField(),
        "method": serializers.ChoiceField(choices=Method.choices, allow_null=True),
        "method_note_ja": serializers.CharField(),
        "method_note_en": serializers.CharField(),
        "notice_ja": serializers.CharField(),
        "notice_en": serializers.CharField(),
        "based_on": serializers.DateTimeField(allow_null=True),
        "issued_at": serializers.DateTimeField(allow_null=True),
        "step_minutes": serializers.FloatField(allow_null=True),
        "interval": serializers.FloatField(help_text="Coverage the lower..upper band is calibrated for (0.8)."),
        "model_version": serializers.IntegerField(allow_null=True),
        "trained_at": serializers.DateTimeField(allow_null=True),
        "points": inline_serializer(*POINT_FIELDS, many=True),
        "crossing": inline_serializer(*CROSSING_FIELDS, allow_null=True),
        "danger_probability_1h": serializers.FloatField(allow_null=True),
        "forecast_rain": serializers.BooleanField(help_text="Some of its leads made by the model that also reads posted forecast rain."),
        "horizon_minutes": serializers.FloatField(allow_null=True, help_text="How far ahead the points reach."),
        "leads_not_shown": inline_serializer(
            *NOT_SHOWN_FIELDS, allow_null=True,
            help_text="The leads up to 6 h the learned model does not show, and why; null: all shown, or not a learned model.",
        ),
        "skill": inline_serializer(*SKILL_FIELDS, many=True),
    },
)
ERROR = inline_serializer("ForecastError", {"detail": serializers.CharField()})


def iso_of(seconds: float | None) -> str | None:
    return local_iso(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None


def forecast_json(station: Station, forecast) -> dict:
    """The forecast document; also what the station page and the NGSI attribute are built from."""
    body = {
        "station": station.code,
        "unit": station.unit,
        "method": None,
        "method_note_ja": "現在の予測はありません(報告中の河川水位計と貯水施設について、学習後に予測します)。",
        "method_note_en": "No current forecast: made for reporting river gauges and reservoirs, once a model is trained.",
        "notice_ja": NOT_AN_OBSERVATION[0],
        "notice_en": NOT_AN_OBSERVATION[1],
        "based_on": None,
        "issued_at": None,
        "step_minutes": None,
        "interval": round(learn.UPPER_Q - learn.LOWER_Q, 2),
        "model_version": None,
        "trained_at": None,
        "points": [],
        "crossing": None,
        "danger_probability_1h": None,
        "forecast_rain": False,
        "horizon_minutes": None,
        "leads_not_shown": None,
        "skill": [],
    }
    if forecast is None or station.kind not in FORECAST_KINDS:
        return body
    zone = timezone.get_current_timezone()
    crossing = None
    if forecast.crossing:
        c = forecast.crossing
        crossing = {
            "threshold": c["name"],
            "label_ja": c["label_ja"],
            "label_en": c["label_en"],
            "level": c["level"],
            "value": c["value"],
            "at": iso_of(c["at"]),
            "earliest": iso_of(c["earliest"]),
            "latest": iso_of(c["latest"]),
            "text_ja": predict.crossing_text(c, english=False, zone=zone),
            "text_en": predict.crossing_text(c, english=True, zone=zone),
        }
    note = METHOD_NOTES[Method(forecast.method)]
    body |= {
        "method": forecast.method,
        "method_note_ja": note[0],
        "method_note_en": note[1],
        "based_on": local_iso(forecast.based_on),
        "issued_at": local_iso(forecast.issued_at),
        "step_minutes": forecast.step_seconds / 60,
        "model_version": forecast.model.version if forecast.model else None,
        "trained_at": local_iso(forecast.model.trained_at) if forecast.model else None,
        "points": [{"time": iso_of(t), "median": m, "lower": lo, "upper": up} for t, m, lo, up in forecast.points],
        "crossing": crossing,
        "danger_probability_1h": forecast.danger_probability_1h,
        "forecast_rain": forecast.forecast_rain,
        "horizon_minutes": (forecast.points[-1][0] - forecast.based_on.timestamp()) / 60 if forecast.points else None,
    }
    if forecast.model is not None:
        body |= served_skill(forecast.model.skill, forecast, learned=forecast.method == Method.ARX)
    return body


def served_skill(skill: list[dict], forecast, *, learned: bool) -> dict:
    """The model version's skill per lead with the variant that made each lead of this forecast
    (learn.served_variants: the plan with forecast rain when some lead of it read forecast rain),
    and the leads not shown, said in words. A trend forecast has no learned leads."""
    variants = learn.served_variants(skill, forecast.forecast_rain) if learned else []
    entries = [
        entry | {"served_by": learn.VARIANT_NAMES[variants[lead]] if lead < len(variants) and variants[lead] != learn.NOT_SHOWN else None}
        for lead, entry in enumerate(skill)
    ]
    missing = [entry["lead_minutes"] for entry in entries if entry["served_by"] is None] if learned else []
    not_shown = None
    if missing:
        runs = []
        for minutes in missing:
            if runs and minutes - runs[-1][1] <= forecast.step_seconds / 60 + 1e-6:
                runs[-1][1] = minutes
            else:
                runs.append([minutes, minutes])
        spans = [f"{a:g}" if a == b else f"{a:g}–{b:g}" for a, b in runs]
        not_shown = {
            "minutes": missing,
            "text_ja": f"{'、'.join(spans)}分先は表示していません。学習期間の検証で、どのモデルも"
                       "持続予測(今の水位のまま)と直近1時間の傾向の延長の両方に勝てなかったためです。",
            "text_en": f"Not shown {', '.join(spans)} min ahead: in the backtest on the training period no model "
                       "beat both persistence (the level stays) and the last hour's trend there.",
        }
    return {"skill": entries, "leads_not_shown": not_shown}


class StationForecastAPI(APIView):
    @extend_schema(
        operation_id="station_forecast",
        summary="The gauge's water-level forecast: median and 80 % band per step, the next threshold's crossing.",
        responses={200: FORECAST, 404: ERROR},
    )
    def get(self, request, code: str):
        try:
            station, forecast = forecast_for_viewer(viewer=viewer_for_request(request), code=code)
        except Station.DoesNotExist:
            # Identical for "no such station" and "not yours to see".
            raise NotFound("No station with this code.") from None
        return Response(forecast_json(station, forecast))


RAIN_FORECAST_REQUEST = inline_serializer(
    "RainForecastRequest",
    {
        "forecasts": inline_serializer(
            "RainForecastIssue",
            {
                "station": serializers.CharField(help_text="A rain gauge of the token's town."),
                "issued_at": serializers.DateTimeField(help_text="ISO 8601 with a UTC offset; at most 2 days old."),
                "values": inline_serializer(
                    "RainForecastInterval",
                    {
                        "valid_at": serializers.DateTimeField(help_text="End of the interval; ascending, ≤ 15 h after issued_at."),
                        "value": serializers.FloatField(help_text="mm forecast to fall since the previous valid_at (or issued_at)."),
                    },
                    many=True,
                ),
            },
            many=True,
        )
    },
)
RAIN_FORECAST_REPLY = inline_serializer(
    "RainForecastReply", {"issues": serializers.IntegerField(), "intervals": serializers.IntegerField()}
)
RAIN_FORECAST_ERRORS = inline_serializer(
    "RainForecastErrors",
    {
        "detail": serializers.CharField(),
        "errors": inline_serializer(
            "RainForecastProblem", {"where": serializers.CharField(), "error": serializers.CharField()}, many=True
        ),
    },
)


class RainForecastIngestAPI(APIView):
    """Forecast rain for a town's rain gauges, posted by its gateway (a forecast-rain product
    relayed per gauge); the forecasting models of the gauges downstream read it."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasIngestToken]

    def permission_denied(self, request, message=None, code=None):
        if request.auth is None:
            raise NotAuthenticated(HasIngestToken.message)
        super().permission_denied(request, message, code)

    @extend_schema(
        operation_id="rain_forecasts_post",
        summary="Post forecast rain for the token's town's rain gauges (all or nothing; an issue re-posted replaces it).",
        request=RAIN_FORECAST_REQUEST,
        responses={
            200: RAIN_FORECAST_REPLY,
            400: OpenApiResponse(RAIN_FORECAST_ERRORS, description="Nothing was stored; every problem and where."),
            401: OpenApiResponse(ERROR, description="Missing, invalid or revoked gateway token."),
        },
    )
    def post(self, request):
        from .services import RainForecastError, rain_forecasts_store

        try:
            stored = rain_forecasts_store(municipality=request.auth.municipality, document=request.data)
        except RainForecastError as error:
            return Response({"detail": "Nothing was stored.", "errors": error.errors}, status=400)
        return Response(stored)
