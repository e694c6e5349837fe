"""CAP 1.2 documents: valid against the OASIS schema for every message type, and what they say."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from alerts.cap import boundary_polygons, cap_time
from alerts.models import Alert, AlertEvent
from sensors.models import Visibility
from tests.conftest import make_station

from alerts.vocabulary import RESERVED_WORDS, gauge_words

from .conftest import ingest, ingest_series, minute_now

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
SQUARE = {"type": "Polygon", "coordinates": [[[139.9, 34.9], [140.1, 34.9], [140.1, 35.1], [139.9, 35.1], [139.9, 34.9]]]}


def storm(code, town, visibility=Visibility.PUBLIC):
    station = make_station(town, code, visibility=visibility)
    start = minute_now() - timedelta(hours=3)
    # Levels below 4 are confirmed by a second reading, and left after half an hour below the margin.
    ingest_series(station.code, start, [2.5, 2.8, 3.1, 3.3, 3.6, 3.8, 4.1, 3.7, 3.7, 3.7, 3.7, 2.8, 2.5, 2.5, 2.5, 2.5])
    return Alert.objects.get(station=station, rule__kind="threshold")


def versions(client, alert):
    events = AlertEvent.objects.filter(alert=alert, kind__in=AlertEvent.NOTIFIED_KINDS).order_by("pk")
    documents = []
    for event in events:
        response = client.get(f"/api/v1/alerts/{alert.pk}/cap", {"event": event.pk})
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("application/cap+xml")
        documents.append((event, response.content))
    return documents


@pytest.mark.django_db(transaction=True)
@override_settings(CAP_SENDER="hq@mizumori.example.jp")
def test_every_version_of_a_public_alert_validates_and_references_the_earlier_ones(client, towns, assert_valid_cap):
    towns[0].boundary = SQUARE
    towns[0].save()
    alert = storm("PUB-1", towns[0])
    documents = versions(client, alert)
    assert [(e.kind, e.level) for e, _ in documents] == [
        ("opened", 2), ("escalated", 3), ("escalated", 4), ("deescalated", 3), ("deescalated", 2), ("resolved", 2),
    ]
    identifiers, sents = [], []
    for index, (event, document) in enumerate(documents):
        root = assert_valid_cap(document)
        identifier = root.findtext("cap:identifier", namespaces=NS)
        sent = root.findtext("cap:sent", namespaces=NS)
        assert identifier == f"mizumori-{alert.pk}-{event.pk}"
        assert sent.endswith("+09:00") and sent == cap_time(event.at)
        assert root.findtext("cap:sender", namespaces=NS) == "hq@mizumori.example.jp"
        assert root.findtext("cap:status", namespaces=NS) == "Actual"
        assert root.findtext("cap:msgType", namespaces=NS) == ["Alert", "Update", "Update", "Update", "Update", "Cancel"][index]
        assert root.findtext("cap:scope", namespaces=NS) == "Public"
        references = root.findtext("cap:references", namespaces=NS)
        expected = " ".join(f"hq@mizumori.example.jp,{i},{s}" for i, s in zip(identifiers, sents))
        assert (references or "") == expected
        infos = root.findall("cap:info", namespaces=NS)
        assert [info.findtext("cap:language", namespaces=NS) for info in infos] == ["ja-JP", "en-US"]
        identifiers.append(identifier)
        sents.append(sent)

    # The level-4 message in both languages: the words of the scheme, the figures of the moment.
    root = assert_valid_cap(documents[2][1])
    ja, en = root.findall("cap:info", namespaces=NS)
    # A gauge's alert is equivalent information: the scheme's gauge words, never the town's order
    # (避難指示) nor the weather agency's 警報, in any version of the message.
    assert ja.findtext("cap:headline", namespaces=NS).startswith("【警戒レベル4相当】PUB-1 観測所 危険な水位に到達")
    assert en.findtext("cap:headline", namespaces=NS).startswith("Level 4 equivalent: PUB-1 gauge, Danger level reached")
    assert ja.findtext("cap:instruction", namespaces=NS) == gauge_words(4).advice_ja != ""
    assert en.findtext("cap:instruction", namespaces=NS) == gauge_words(4).advice_en != ""
    for _, document in documents:
        text = document.decode()
        assert [word for word in RESERVED_WORDS if word in text] == []
    assert (en.findtext("cap:urgency", namespaces=NS), en.findtext("cap:severity", namespaces=NS)) == ("Immediate", "Severe")
    assert en.findtext("cap:certainty", namespaces=NS) == "Observed"
    assert en.findtext("cap:category", namespaces=NS) == "Met"
    description = en.findtext("cap:description", namespaces=NS)
    assert "PUB-1 gauge" in description and "4.1 m" in description and "Rate of rise (30 min): +" in description
    area = en.find("cap:area", namespaces=NS)
    assert area.findtext("cap:circle", namespaces=NS) == "35.000000,140.000000 2"
    polygon = area.findtext("cap:polygon", namespaces=NS).split(" ")
    assert polygon[0] == polygon[-1] == "34.900000,139.900000"  # lat,lon, closed
    assert len(polygon) == 5

    cancel = assert_valid_cap(documents[-1][1])
    assert cancel.find("cap:info/cap:responseType", namespaces=NS).text == "AllClear"
    # Without ?event= the newest version is served.
    assert client.get(f"/api/v1/alerts/{alert.pk}/cap").content == documents[-1][1]


@pytest.mark.django_db(transaction=True)
def test_private_and_region_alerts_are_restricted(client, towns, user_a, assert_valid_cap):
    client.force_login(user_a)
    for visibility in (Visibility.PRIVATE, Visibility.REGION):
        alert = storm(f"S-{visibility}", towns[0], visibility=visibility)
        for _, document in versions(client, alert):
            root = assert_valid_cap(document)
            assert root.findtext("cap:scope", namespaces=NS) == "Restricted"
            assert root.findtext("cap:restriction", namespaces=NS)


@pytest.mark.django_db(transaction=True)
@override_settings(TIME_ZONE="UTC")
def test_sent_keeps_a_numeric_offset_in_utc(client, towns, assert_valid_cap):
    alert = storm("UTC-1", towns[0])
    for _, document in versions(client, alert):
        sent = assert_valid_cap(document).findtext("cap:sent", namespaces=NS)
        assert sent.endswith("+00:00")


@pytest.mark.django_db(transaction=True)
def test_stale_alert_message_validates(client, towns, assert_valid_cap):
    station = make_station(towns[0], "QUIET", visibility=Visibility.PUBLIC)
    ingest(station.code, [(minute_now() - timedelta(hours=3), 1.0)])
    call_command("check_stale_sensors")
    ingest(station.code, [(minute_now() - timedelta(minutes=1), 1.0)])
    alert = Alert.objects.get(station=station, rule__kind="stale")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123"))
    documents = versions(client, alert)
    assert [e.kind for e, _ in documents] == ["opened", "resolved"]
    for _, document in documents:
        root = assert_valid_cap(document)
        assert root.findtext("cap:info/cap:category", namespaces=NS) == "Infra"


def test_large_and_multi_part_boundaries_are_simplified_and_closed():
    import math

    ring = [[140 + 0.1 * math.cos(a / 500 * 2 * math.pi), 35 + 0.1 * math.sin(a / 500 * 2 * math.pi)] for a in range(500)]
    ring.append(ring[0])
    island = [[141.0, 36.0], [141.01, 36.0], [141.01, 36.01], [141.0, 36.0]]
    polygons = boundary_polygons({"type": "MultiPolygon", "coordinates": [[island], [ring]]})
    assert len(polygons) == 2
    big, small = (p.split(" ") for p in polygons)
    assert 4 <= len(big) <= 200 and big[0] == big[-1]
    assert small == ["36.000000,141.000000", "36.000000,141.010000", "36.010000,141.010000", "36.000000,141.000000"]
    assert boundary_polygons(None) == []
    assert boundary_polygons({"type": "Point", "coordinates": [140, 35]}) == []
    assert boundary_polygons({"type": "Polygon", "coordinates": "garbage"}) == []
