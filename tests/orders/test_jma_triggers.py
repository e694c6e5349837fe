"""Trigger rules on the weather agency's warnings (issue 16 item 5): "when JMA has 大雨警報 /
土砂災害警戒情報 / 氾濫危険情報 … in force for this town, recommend level L for districts D", fired
from the JMA reports (jma.changed in the change log), once per issue, re-armed when lifted."""

from __future__ import annotations

import json

import pytest

from jma.parser import parse_report
from jma.services import jma_report_apply
from orders.models import Recommendation, TriggerRule
from orders.services import OrderError, trigger_rule_add
from tenancy.models import AuditEvent
from tenancy.selectors import viewer_for_user

from ..jma.test_jma import RIVER, weather

# 土砂災害警戒情報 (VXWW50): the Kind says only 警戒 / なし / 解除; areas are municipalities (7 digits).
LANDSLIDE = """<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/" xmlns:jmx="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>土砂災害警戒情報</Title><DateTime>2026-11-22T02:00:00Z</DateTime><Status>通常</Status>
<EditorialOffice>水森地方気象台</EditorialOffice><PublishingOffice>水森県　水森地方気象台</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/"><Title>水森県土砂災害警戒情報</Title>
<ReportDateTime>{at}</ReportDateTime><TargetDateTime>{at}</TargetDateTime><EventID>水森県土砂災害警戒情報</EventID>
<InfoType>発表</InfoType><Serial>1</Serial><InfoKind>土砂災害警戒情報</InfoKind><InfoKindVersion>1.0_0</InfoKindVersion>
<Headline><Text>命に危険を及ぼす土砂災害がいつ発生してもおかしくない非常に危険な状況です。</Text></Headline></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/meteorology1/">
<TargetArea><Name>水森県</Name><Code>990000</Code></TargetArea>
<Warning type="土砂災害警戒情報">
<Item><Kind><Name>{a_kind}</Name><Code>3</Code><Status>{a_status}</Status></Kind><Area><Name>町A</Name><Code>9900000</Code></Area></Item>
<Item><Kind><Name>なし</Name><Code>0</Code><Status>なし</Status></Kind><Area><Name>町B</Name><Code>9900400</Code></Area></Item>
</Warning></Body></Report>"""


def landslide(at: str, *, a_kind="警戒", a_status="発表") -> bytes:
    return LANDSLIDE.format(at=at, a_kind=a_kind, a_status=a_status).encode("utf-8")


def apply(data: bytes, capture) -> None:
    with capture(execute=True):
        jma_report_apply(parse_report(data))


def jma_rule(town, name: str, level: int, districts) -> TriggerRule:
    rule = TriggerRule.objects.create(municipality=town, jma_warning=name, level=level)
    rule.districts.set(districts)
    return rule


def open_recommendations(slug: str) -> list[Recommendation]:
    return list(Recommendation.objects.filter(municipality__slug=slug, state=Recommendation.State.OPEN))


@pytest.mark.django_db
def test_a_heavy_rain_warning_for_the_town_recommends_once_and_rearms_when_lifted(
    towns, districts, django_capture_on_commit_callbacks
):
    rule_a = jma_rule(towns[0], "大雨警報", 3, [districts["A-1"], districts["A-2"]])
    rule_b = jma_rule(towns[1], "大雨警報", 3, [districts["B-1"]])
    apply(weather("2026-11-22T10:00:00+09:00"), django_capture_on_commit_callbacks)  # 大雨警報 for A only
    [recommendation] = open_recommendations("town-a")
    assert open_recommendations("town-b") == []
    assert recommendation.rule == rule_a and recommendation.level == 3
    assert sorted(d.code for d in recommendation.districts.all()) == ["A-1", "A-2"]
    evidence = recommendation.evidence
    assert (evidence["fired_by"], evidence["jma_warning"], evidence["jma_status"]) == ("jma", "大雨警報", "発表")
    assert evidence["jma_report_title"] == "水森県気象警報・注意報" and evidence["attribution_ja"] == "出典：気象庁（防災情報XML）"
    assert evidence["reported_at"].startswith("2026-11-22T10:00")

    # The next report keeps it in force (継続): no second recommendation, even once the first is dismissed.
    recommendation.state = Recommendation.State.DISMISSED
    recommendation.save()
    apply(weather("2026-11-22T11:00:00+09:00").replace("<Status>発表</Status>".encode(), "<Status>継続</Status>".encode()),
          django_capture_on_commit_callbacks)
    assert open_recommendations("town-a") == []
    rule_a.refresh_from_db()
    assert rule_a.fired_at is not None

    # Lifted (a 取消 clears the town's warnings): armed again; issued again: recommended again.
    apply(weather("2026-11-22T12:00:00+09:00", info="取消"), django_capture_on_commit_callbacks)
    rule_a.refresh_from_db()
    assert rule_a.fired_at is None and open_recommendations("town-a") == []
    apply(weather("2026-11-22T13:00:00+09:00"), django_capture_on_commit_callbacks)
    assert len(open_recommendations("town-a")) == 1
    rule_b.refresh_from_db()
    assert rule_b.fired_at is None


@pytest.mark.django_db
def test_a_special_warning_satisfies_the_warning_rule_but_an_advisory_does_not(
    towns, districts, django_capture_on_commit_callbacks
):
    jma_rule(towns[1], "大雨警報", 4, [districts["B-1"]])
    apply(weather("2026-11-22T10:00:00+09:00", b_kind="大雨注意報", b_status="発表"), django_capture_on_commit_callbacks)
    assert open_recommendations("town-b") == []
    apply(weather("2026-11-22T11:00:00+09:00", b_kind="大雨特別警報", b_status="発表"), django_capture_on_commit_callbacks)
    [recommendation] = open_recommendations("town-b")
    assert recommendation.level == 4 and recommendation.evidence["jma_warning"] == "大雨特別警報"


@pytest.mark.django_db
def test_a_landslide_alert_report_is_read_and_fires_its_rule(towns, districts, django_capture_on_commit_callbacks):
    report = parse_report(landslide("2026-11-22T11:00:00+09:00"))
    [area_a, area_b] = report.warnings["土砂災害警戒情報"]
    assert area_a.kinds == (("土砂災害警戒情報", "3", "発表"),) and area_b.kinds == ()
    rule = jma_rule(towns[0], "土砂災害警戒情報", 4, [districts["A-2"]])
    apply(landslide("2026-11-22T11:00:00+09:00"), django_capture_on_commit_callbacks)
    [recommendation] = open_recommendations("town-a")
    assert recommendation.level == 4 and recommendation.evidence["jma_report_title"] == "水森県土砂災害警戒情報"
    apply(landslide("2026-11-22T14:00:00+09:00", a_kind="解除", a_status="解除"), django_capture_on_commit_callbacks)
    rule.refresh_from_db()
    assert rule.fired_at is None


@pytest.mark.django_db
def test_a_designated_river_flood_forecast_recommends_to_the_town_it_names(towns, districts, django_capture_on_commit_callbacks):
    jma_rule(towns[0], "氾濫警戒情報", 3, [districts["A-1"]])
    jma_rule(towns[1], "氾濫警戒情報", 3, [districts["B-1"]])
    apply(RIVER.encode(), django_capture_on_commit_callbacks)
    assert open_recommendations("town-a") == [] and len(open_recommendations("town-b")) == 1


@pytest.mark.django_db
def test_an_order_in_force_covering_the_districts_holds_the_recommendation_back(
    client, towns, districts, members, django_capture_on_commit_callbacks
):
    jma_rule(towns[0], "大雨警報", 3, [districts["A-1"]])
    client.force_login(members["a-operator"])
    body = {"level": 4, "districts": ["A-1"], "reason": "先行して発令"}
    assert client.post("/api/v1/orders", data=json.dumps(body), content_type="application/json").status_code == 201
    apply(weather("2026-11-22T10:00:00+09:00"), django_capture_on_commit_callbacks)
    assert open_recommendations("town-a") == []


@pytest.mark.django_db
def test_a_rule_added_while_the_warning_is_in_force_recommends_at_once(
    towns, districts, members, django_capture_on_commit_callbacks
):
    jma_report_apply(parse_report(weather("2026-11-22T10:00:00+09:00")))
    viewer = viewer_for_user(members["a-admin"], towns[0].pk)
    with django_capture_on_commit_callbacks(execute=True):
        rule = trigger_rule_add(
            viewer=viewer, actor=members["a-admin"], town=towns[0], jma_warning="洪水警報", level=3,
            districts=["A-1"],
        )
    assert open_recommendations("town-a") == []  # 洪水注意報 is in force, not 洪水警報
    with django_capture_on_commit_callbacks(execute=True):
        rule = trigger_rule_add(
            viewer=viewer, actor=members["a-admin"], town=towns[0], jma_warning="大雨警報", level=3, districts=["A-1"],
        )
    [recommendation] = open_recommendations("town-a")
    assert recommendation.rule == rule
    assert AuditEvent.objects.filter(action="trigger_rule_changed", detail__added__jma_warning="大雨警報").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jma_warning": "大雨注意報"}, "not a JMA warning a rule may watch"),
        ({"jma_warning": "<script>\x00" * 40}, "not a JMA warning a rule may watch"),
        ({"jma_warning": "大雨警報", "station": "A-SHARED", "threshold": "evacuation_decision"}, "not both"),
        ({"jma_warning": "大雨警報", "forecast_minutes": "60"}, "not both"),
        ({"jma_warning": "大雨警報", "districts": ["B-1"]}, "must belong to the order's town"),
    ],
)
def test_bad_jma_rules_are_refused_with_a_reason(towns, districts, members, stations, fields, message):
    viewer = viewer_for_user(members["a-admin"], towns[0].pk)
    arguments = {"level": 3, "districts": ["A-1"], **fields}
    with pytest.raises(OrderError, match=message):
        trigger_rule_add(viewer=viewer, actor=members["a-admin"], town=towns[0], **arguments)
    assert not TriggerRule.objects.exists()


@pytest.mark.django_db
def test_the_town_admin_page_adds_lists_and_removes_a_jma_rule(client, towns, members, districts):
    client.force_login(members["b-admin"])
    page = client.get("/hq/admin/triggers/").content.decode()
    assert 'value="add_jma"' in page and "土砂災害警戒情報" in page
    response = client.post("/hq/admin/triggers/", {"action": "add_jma", "jma_warning": "土砂災害警戒情報", "level": "4",
                                                   "districts": ["B-1"]})
    assert response.status_code == 302
    rule = TriggerRule.objects.get()
    assert (rule.municipality.slug, rule.station, rule.jma_warning, rule.level) == ("town-b", None, "土砂災害警戒情報", 4)
    page = client.get("/hq/admin/triggers/").content.decode()
    assert '<td class="mz-jma-rule">気象庁</td><td>土砂災害警戒情報</td>' in page
    client.post("/hq/admin/triggers/", {"action": "remove", "rule": str(rule.pk)})
    assert not TriggerRule.objects.exists()
    # Another town's admin neither sees nor adds rules for B.
    client.force_login(members["a-admin"])
    assert "土砂災害警戒情報</td>" not in client.get("/hq/admin/triggers/").content.decode()


@pytest.mark.django_db
def test_a_town_never_sees_another_towns_jma_recommendation(client, towns, districts, members, django_capture_on_commit_callbacks):
    jma_rule(towns[0], "大雨警報", 3, [districts["A-1"]])
    apply(weather("2026-11-22T10:00:00+09:00"), django_capture_on_commit_callbacks)
    client.force_login(members["b-admin"])
    assert client.get("/api/v1/recommendations?state=all").json()["results"] == []
    client.force_login(members["a-viewer"])
    [shown] = client.get("/api/v1/recommendations").json()["results"]
    assert shown["evidence"]["fired_by"] == "jma"
