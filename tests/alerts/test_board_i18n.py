"""The board, its confirmation, the history and a station page speak the page's language only: the
UI strings through gettext, the level and rule words (contract words, alerts.vocabulary) and names
through config.i18n — no English-only words on a Japanese page, no Japanese UI on an English one."""

from datetime import timedelta

import pytest

from tests.alerts.test_board_rows import open_alert

# (Japanese, English) UI strings of the converted pages: each page in one language shows only its own.
BOARD_WORDS = [("アラートボード", "Alert board"), ("確認", "Acknowledge"), ("メモ追加", "Add note"), ("解除…", "Resolve…"),
               ("絞り込み", "Filter"), ("種別", "Kind"), ("急上昇", "rapid rise"), ("未解除のアラート", "Open alerts")]
HISTORY_WORDS = [("アラート履歴", "Alert history"), ("解除済み", "resolved"), ("発表", "issued"), ("基準値超過", "threshold"),
                 ("最大レベル", "Peak level"), ("状態", "State"), ("該当するアラートはありません", "No alerts match")]


def html_in(client, path, language):
    return client.get(path, HTTP_ACCEPT_LANGUAGE=language).content.decode()


@pytest.fixture
def board_alerts(stations, operator_a, client):
    alert = open_alert(stations["a-private"], 4, value=3.62)
    open_alert(stations["a-private"], 1, kind="rate_of_rise", window=timedelta(minutes=30), value=0.64)
    client.force_login(operator_a)
    alert.operator = operator_a
    return alert


@pytest.mark.parametrize("language, own, other", [("ja", 0, 1), ("en", 1, 0)])
def test_the_board_speaks_the_page_language_only(client, board_alerts, language, own, other):
    html = html_in(client, "/hq/alerts/", language)
    for words in BOARD_WORDS:
        assert words[own] in html, words[own]
    for words in BOARD_WORDS[:1] + BOARD_WORDS[2:]:
        assert f">{words[other]}<" not in html and f"{words[other]}</" not in html, words[other]
    # The contract words of the level come from the scheme, in the page's language.
    level, water = ("警戒レベル4相当", "水位 3.62 m") if language == "ja" else ("Level 4 equivalent", "Water level 3.62 m")
    assert level in html and water in html
    assert ("Water level 3.62 m" in html) == (language == "en") and ("水位 3.62 m" in html) == (language == "ja")
    for word in ("避難指示", "緊急安全確保", "高齢者等避難", "警報"):
        assert word not in html


def test_the_resolve_confirmation_asks_in_the_page_language(client, board_alerts):
    ja = html_in(client, "/hq/alerts/", "ja")
    assert "を解除しますか?" in ja and "Resolve Water level" not in ja
    en = html_in(client, "/hq/alerts/", "en")
    assert 'data-confirm="Resolve Water level 3.62 m at' in en and "を解除しますか" not in en
    page = client.post(f"/hq/alerts/{board_alerts.pk}/act", {"action": "resolve"}, HTTP_ACCEPT_LANGUAGE="ja")
    html = page.content.decode()
    assert "解除の確認" in html and "解除する" in html and "やめる" in html and "Confirm resolve" not in html


@pytest.mark.parametrize("language, own, other", [("ja", 0, 1), ("en", 1, 0)])
def test_the_history_speaks_the_page_language_only(client, board_alerts, language, own, other):
    from alerts.services import alert_resolve

    alert_resolve(board_alerts, board_alerts.operator)
    html = html_in(client, "/hq/alerts/history/", language)
    for words in HISTORY_WORDS[:-1]:
        assert words[own] in html, words[own]
        assert f">{words[other]}<" not in html and f" {words[other]}</" not in html, words[other]
    html = html_in(client, "/hq/alerts/history/?town=town-b&level=5", language)
    assert HISTORY_WORDS[-1][own] in html and HISTORY_WORDS[-1][other] not in html


@pytest.mark.parametrize("language, error", [("ja", "レベルは1〜5"), ("en", "level: 1–5")])
def test_a_bad_history_filter_is_explained_in_the_page_language(client, board_alerts, language, error):
    reply = client.get("/hq/alerts/history/?level=9", HTTP_ACCEPT_LANGUAGE=language)
    assert reply.status_code == 400 and error in reply.content.decode()


@pytest.mark.parametrize(
    "language, words, absent",
    [
        ("ja", ["観測値", "基準値", "CSV でダウンロード", "地図へ戻る", "A-PUBLIC 観測所"], ["Readings", "Download CSV", "Back to the map"]),
        ("en", ["Readings", "Thresholds", "Download CSV", "Back to the map", "A-PUBLIC gauge"], ["観測値", "CSV でダウンロード", "地図へ戻る"]),
        ("zh-hans", ["观测值", "下载 CSV", "返回地图", "A-PUBLIC 観測所"], ["CSV でダウンロード", "Download CSV"]),
    ],
)
def test_a_station_page_speaks_the_page_language(client, stations, language, words, absent):
    html = html_in(client, "/stations/A-PUBLIC/", language)
    for word in words:
        assert word in html, word
    for word in absent:
        assert word not in html, word
