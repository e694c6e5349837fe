"""Issue 16 item 7: JMA 防災情報XML (気象警報・注意報, 指定河川洪水予報) from files, mapped to towns by area
code, shown on / and /hq/ in the agency's words with attribution; hostile XML is refused."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from jma.models import JmaWarning
from jma.parser import ReportError, parse_report
from jma.services import jma_report_apply
from tenancy.models import Membership

# Town A is 990001 (area 9900000), town B 990043 (area 9900400): fictional codes, as in tests/conftest.py.
WEATHER = """<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/" xmlns:jmx="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>気象警報・注意報（Ｈ２７）</Title><DateTime>{utc}</DateTime><Status>{status}</Status>
<EditorialOffice>水森地方気象台</EditorialOffice><PublishingOffice>水森地方気象台</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">
<Title>水森県気象警報・注意報</Title><ReportDateTime>{at}</ReportDateTime><TargetDateTime>{at}</TargetDateTime>
<EventID/><InfoType>{info}</InfoType><Serial/><InfoKind>気象警報・注意報</InfoKind><InfoKindVersion>1.1_1</InfoKindVersion>
<Headline><Text>水森県では、大雨に警戒してください。</Text></Headline></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/meteorology1/">
<Warning type="気象警報・注意報（府県予報区等）"><Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status></Kind>
<Area><Name>水森県</Name><Code>990000</Code></Area></Item></Warning>
<Warning type="気象警報・注意報（市町村等）">
<Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status></Kind>
<Kind><Name>洪水注意報</Name><Code>18</Code><Status>継続</Status></Kind>
<Area><Name>町A</Name><Code>9900000</Code></Area></Item>
<Item><Kind><Name>{b_kind}</Name><Code>00</Code><Status>{b_status}</Status></Kind>
<Area><Name>町B</Name><Code>9900400</Code></Area></Item>
<Item><Kind><Name>雷注意報</Name><Code>14</Code><Status>発表</Status></Kind>
<Area><Name>よその町</Name><Code>1310100</Code></Area></Item>
</Warning></Body></Report>"""

RIVER = """<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>指定河川洪水予報</Title><DateTime>2026-11-22T01:10:00Z</DateTime><Status>通常</Status>
<EditorialOffice>水森地方気象台</EditorialOffice><PublishingOffice>水森県　水森地方気象台</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/"><Title>水森川氾濫警戒情報</Title>
<ReportDateTime>2026-11-22T10:10:00+09:00</ReportDateTime><InfoType>発表</InfoType><InfoKind>指定河川洪水予報</InfoKind></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/hydrology1/">
<Warning type="指定河川洪水予報（河川）"><Item><Kind><Name>氾濫警戒情報</Name><Code>52</Code></Kind>
<Areas codeType="水位観測所"><Area><Name>水森橋</Name><Code>8800000001</Code></Area></Areas></Item></Warning>
<Warning type="指定河川洪水予報（市町村）"><Item><Kind><Name>氾濫警戒情報</Name><Code>52</Code><Status>発表</Status></Kind>
<Areas codeType="市町村"><Area><Name>町B</Name><Code>9900400</Code></Area></Areas></Item></Warning>
</Body></Report>"""


def weather(at="2026-11-22T10:00:00+09:00", *, b_kind="発表警報・注意報はなし", b_status="発表警報・注意報はなし",
            info="発表", status="通常") -> bytes:
    return WEATHER.format(at=at, utc="2026-11-22T01:00:00Z", b_kind=b_kind, b_status=b_status,
                          info=info, status=status).encode("utf-8")


def in_force(town) -> list[str]:
    return sorted(JmaWarning.objects.filter(municipality=town).values_list("name", flat=True))


def test_warnings_map_to_towns_by_area_code_in_the_agencys_words(towns):
    result = jma_report_apply(parse_report(weather()))
    assert result.towns == ["town-a", "town-b"] and result.unknown_areas == ["1310100"]
    assert in_force(towns[0]) == ["大雨警報", "洪水注意報"]
    assert in_force(towns[1]) == []  # 発表警報・注意報はなし
    warning = JmaWarning.objects.get(name="大雨警報")
    assert (warning.report_title, warning.office, warning.status) == ("水森県気象警報・注意報", "水森地方気象台", "発表")


def test_a_newer_report_replaces_an_older_one_and_a_late_older_one_changes_nothing(towns):
    jma_report_apply(parse_report(weather("2026-11-22T10:00:00+09:00")))
    newer = weather("2026-11-22T12:00:00+09:00", b_kind="大雨注意報", b_status="発表").replace(
        "<Status>継続</Status>".encode(), "<Status>解除</Status>".encode())
    jma_report_apply(parse_report(newer))
    assert in_force(towns[0]) == ["大雨警報"] and in_force(towns[1]) == ["大雨注意報"]
    late = jma_report_apply(parse_report(weather("2026-11-22T11:00:00+09:00")))
    assert late.older == ["town-a", "town-b"]
    assert in_force(towns[0]) == ["大雨警報"] and in_force(towns[1]) == ["大雨注意報"]
    cancelled = weather("2026-11-22T13:00:00+09:00", info="取消")
    jma_report_apply(parse_report(cancelled))
    assert in_force(towns[0]) == [] and in_force(towns[1]) == []


def test_a_river_flood_forecast_reaches_the_towns_it_names(towns):
    jma_report_apply(parse_report(RIVER.encode()))
    assert in_force(towns[1]) == ["氾濫警戒情報"] and in_force(towns[0]) == []
    assert JmaWarning.objects.get().report_title == "水森川氾濫警戒情報"


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&lol2;</Title></Control></Report>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&x;</Title></Control></Report>"""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "refused"),
        (EXTERNAL, "refused"),
        (b"<Report", "not well-formed"),
        (b"", "not well-formed"),
        (b"<html><body>maintenance</body></html>", "not a JMA"),
        (b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"/>', "Control, Head and Body"),
        (weather(status="訓練"), "only 通常"),
        (weather(at="yesterday"), "not an ISO 8601"),
        (weather(at="2026-11-22T10:00:00"), "no UTC offset"),
        (weather().replace("水森県気象警報・注意報".encode(), ("長" * 200).encode()), "longer than"),
        (weather().replace("町A".encode(), b"A\x01"), "not well-formed"),
        (b"<a>" * 10 + b"x" * (5 * 1024 * 1024), "larger than"),
    ],
)
def test_malformed_hostile_and_oversized_reports_are_refused(data, message):
    with pytest.raises(ReportError, match=message):
        parse_report(data)


def test_the_command_reads_a_directory_oldest_first_and_reports_what_it_skipped(towns, tmp_path):
    (tmp_path / "b.xml").write_bytes(weather("2026-11-22T12:00:00+09:00", b_kind="大雨注意報", b_status="発表"))
    (tmp_path / "a.xml").write_bytes(weather("2026-11-22T10:00:00+09:00"))
    (tmp_path / "evil.xml").write_bytes(BILLION_LAUGHS)
    (tmp_path / "notes.txt").write_text("ignored")
    out, err = StringIO(), StringIO()
    call_command("import_jma_xml", str(tmp_path), stdout=out, stderr=err)
    assert "2 report(s) applied, 1 skipped" in out.getvalue()
    assert "evil.xml: skipped: refused" in err.getvalue() and "areas of no town here: 1310100" in err.getvalue()
    assert in_force(towns[1]) == ["大雨注意報"]  # b.xml is newer, whatever the file order
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_jma_xml", str(tmp_path / "missing"))


def test_the_pages_show_the_warnings_attributed_to_the_agency(client, towns):
    jma_report_apply(parse_report(weather()))
    page = client.get("/").content.decode()
    assert "気象庁の発表" in page and "出典：気象庁（防災情報XML）" in page
    assert "大雨警報" in page and "洪水注意報" in page and "水森県気象警報・注意報" in page
    # The agency's words stay inside its attributed section: nowhere else on the page.
    start, end = page.index('<section class="mz-section mz-jma"'), page.index("</section>", page.index("mz-attribution"))
    assert "警報" not in page[:start] + page[end:]
    user = get_user_model().objects.create_user("b-viewer", password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=towns[1], role=Membership.Role.VIEWER)
    client.force_login(user)
    assert "出典：気象庁（防災情報XML）" in client.get("/hq/").content.decode()


def test_names_from_a_report_are_escaped_on_the_pages(client, towns):
    hostile = weather().replace("大雨警報".encode(), "&lt;script&gt;x&lt;/script&gt;".encode())
    jma_report_apply(parse_report(hostile))
    page = client.get("/").content.decode()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def town_entries(html: str) -> dict[str, list[str]]:
    """{town slug: the agency's kinds listed for it} from the JMA panel."""
    import re

    entries = re.findall(r'<li class="mz-notice mz-jma-town" data-town="([^"]+)">(.*?)</li>', html, re.S)
    return {slug: sorted(re.findall(r'<span class="mz-jma-kind" lang="ja">([^<]+)</span>', body)) for slug, body in entries}


def test_a_report_fixture_shows_each_warning_on_its_own_town_only(client, towns):
    jma_report_apply(parse_report(weather(b_kind="大雨注意報", b_status="発表")))
    jma_report_apply(parse_report(RIVER.encode()))
    expected = {"town-a": sorted(["大雨警報", "洪水注意報"]), "town-b": sorted(["大雨注意報", "氾濫警戒情報"])}
    assert town_entries(client.get("/").content.decode()) == expected
    user = get_user_model().objects.create_user("a-viewer", password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    client.force_login(user)
    assert town_entries(client.get("/hq/").content.decode()) == expected
