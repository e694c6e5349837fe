"""Django i18n: the gettext catalogs are complete for ja and en (makemessages / compilemessages run
in `make test`, so a new string without its translation fails here), the browser's language and the
switch pick the page's language, data kept per language falls back to Japanese, and the page
scripts' catalog is served per language from this site."""

import json
import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.utils import translation

from config.i18n import localized, pick

LOCALE = Path(settings.BASE_DIR) / "locale"
COMPLETE = ("ja", "en")  # a string missing in one of these fails; other languages are started catalogs
DOMAINS = ("django", "djangojs")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]")


def catalog(language: str, domain: str) -> polib.POFile:
    return polib.pofile(str(LOCALE / language / "LC_MESSAGES" / f"{domain}.po"))


def entries(po: polib.POFile):
    return [entry for entry in po if not entry.obsolete and entry.msgid]


@pytest.mark.parametrize("language", COMPLETE)
@pytest.mark.parametrize("domain", DOMAINS)
def test_ja_and_en_catalogs_have_no_untranslated_or_fuzzy_string(language, domain):
    po = catalog(language, domain)
    assert len(entries(po)) > 0
    untranslated = [entry.msgid for entry in po.untranslated_entries()]
    fuzzy = [entry.msgid for entry in po.fuzzy_entries()]
    assert not untranslated, f"locale/{language}/LC_MESSAGES/{domain}.po: untranslated {untranslated}"
    assert not fuzzy, f"locale/{language}/LC_MESSAGES/{domain}.po: fuzzy {fuzzy}"


@pytest.mark.parametrize("language", [code.replace("-hans", "_Hans") for code, _ in settings.LANGUAGES])
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_translation_keeps_its_placeholders_and_the_compiled_catalog_matches(language, domain):
    """A translation that drops or renames a %(name)s breaks the page at render time; a .mo older than
    its .po shows old words (the .mo files are committed, so pages work without gettext installed)."""
    po = catalog(language, domain)
    # Keyed by context too: the same msgid may be translated differently in a context (pgettext).
    compiled = {
        (entry.msgctxt, entry.msgid): entry
        for entry in polib.mofile(str(LOCALE / language / "LC_MESSAGES" / f"{domain}.mo"))
    }
    for entry in entries(po):
        translations = [entry.msgstr] if not entry.msgid_plural else list(entry.msgstr_plural.values())
        for text in filter(None, translations):
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(entry.msgid)), (language, entry.msgid, text)
        if entry.translated() and not entry.fuzzy:
            key = (entry.msgctxt, entry.msgid)
            assert key in compiled, f"{language}/{domain}.mo lacks {entry.msgid!r}: run `make messages`"
            assert compiled[key].msgstr == entry.msgstr, f"{language}/{domain}.mo is stale for {entry.msgid!r}"


def test_the_started_language_has_the_public_strings():
    po = catalog("zh_Hans", "django")
    done = {entry.msgid for entry in po.translated_entries()}
    for msgid in ("Skip to content", "Staff login", "Back to the map", "Readings", "Thresholds", "Download CSV"):
        assert msgid in done, msgid


@pytest.mark.parametrize(
    "accept, words, absent",
    [
        ("ja,en;q=0.5", "関係者ログイン", "Staff login"),
        ("en-US,en;q=0.9", "Staff login", "関係者ログイン"),
        ("zh-CN,zh;q=0.9", "工作人员登录", "関係者ログイン"),
        ("", "関係者ログイン", "Staff login"),  # none: Japanese, the site's language
        ("x" * 5000, "関係者ログイン", "Staff login"),  # oversized header: the default, no error
    ],
)
def test_the_browsers_language_picks_the_page_language(client, accept, words, absent):
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=accept).content.decode()
    assert words in html and absent not in html


def test_the_switch_offers_every_language_and_remembers_the_choice(client, db):
    html = client.get("/accounts/login/").content.decode()
    for code, name in settings.LANGUAGES:
        assert f'value="{code}" lang="{code}"' in html and name in html
    assert 'value="ja" lang="ja" aria-pressed="true"' in html

    reply = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"}, HTTP_ACCEPT_LANGUAGE="ja")
    assert reply.status_code == 302 and reply["Location"] == "/accounts/login/"
    # The choice wins over the browser's language from now on.
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "Staff login" in html and '<html lang="en">' in html and 'value="en" lang="en" aria-pressed="true"' in html


@pytest.mark.parametrize("language", ["xx", "../ja", "ja\x00", "e" * 300])
def test_the_switch_ignores_an_unknown_or_hostile_language(client, db, language):
    reply = client.post("/i18n/setlang/", {"language": language, "next": "/accounts/login/"})
    assert reply.status_code == 302
    html = client.get("/accounts/login/").content.decode()
    assert "関係者ログイン" in html and '<html lang="ja">' in html


def test_the_scripts_catalog_is_served_per_language_and_cacheable(client, db):
    reply = client.get("/i18n/catalog/ja.js")
    body = reply.content.decode()
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/javascript")
    assert json.dumps("水守 アラート") in body and "gettext" in body
    assert "public" in reply["Cache-Control"] and "max-age=3600" in reply["Cache-Control"]
    assert json.dumps("水守 アラート") not in client.get("/i18n/catalog/en.js", HTTP_ACCEPT_LANGUAGE="ja").content.decode()


@pytest.mark.parametrize("language", ["xx", "ja%00", "..%2Fen", "a" * 500])
def test_an_unknown_scripts_catalog_is_a_404(client, db, language):
    assert client.get(f"/i18n/catalog/{language}.js").status_code == 404


class Named:
    name_ja = "上田橋"
    name_en = "Ueda Bridge"
    label_ja = "氾濫危険水位"
    label_en = ""


def test_data_kept_per_language_shows_in_the_active_language_else_japanese():
    with translation.override("en"):
        assert localized(Named(), "name") == "Ueda Bridge"
        assert localized(Named(), "label") == "氾濫危険水位"  # no English: Japanese, never empty
        assert pick(("未確認", "open")) == "open"
        assert localized({"ja": "放流中", "en": "releasing"}) == "releasing"
    with translation.override("ja"):
        assert localized(Named(), "name") == "上田橋" and pick(("未確認", "open")) == "未確認"
    with translation.override("zh-hans"):
        # No Chinese column yet: Japanese, the language the towns write in. A `name_zh_hans` column
        # (or key) would be picked up with no other change.
        assert localized(Named(), "name") == "上田橋"
        assert localized({"name_zh_hans": "上田桥", "name_ja": "上田橋"}, "name") == "上田桥"
    assert localized(Named(), "missing") == ""


@pytest.mark.parametrize(
    "language, words, absent",
    [
        ("ja", ["ゲートウェイトークンを発行", "非公開(所有する自治体のみ)", "公開"], ["gateway token created", "private (owner town only)"]),
        ("en", ["gateway token created", "private (owner town only)"], ["ゲートウェイトークンを発行", "非公開(所有する自治体のみ)"]),
    ],
)
def test_audit_actions_and_visibility_options_speak_the_page_language(client, stations, towns, language, words, absent):
    """Their labels stay English in the model (API and schema unchanged) and are translated on display."""
    from django.contrib.auth import get_user_model

    from tenancy.models import AuditEvent, Membership

    admin = get_user_model().objects.create_user("i18n-admin", password="pw-12345-abc")
    Membership.objects.create(user=admin, municipality=towns[0], role=Membership.Role.ADMIN)
    AuditEvent.objects.create(action=AuditEvent.Action.TOKEN_CREATED, municipality=towns[0], target="mzm_AAAA…")
    client.force_login(admin)
    html = "".join(
        client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode() for url in ("/hq/admin/audit/", "/hq/admin/sharing/")
    )
    for word in words:
        assert word in html, word
    for word in absent:
        assert word not in html, word


def test_the_map_popup_words_come_from_the_catalog_in_a_third_language_else_japanese(db):
    """The map vocabulary's UI words (popup headings, trends, sharing) are gettext: a zh-hans reader
    gets the catalog's words, and Japanese where the started catalog has none yet."""
    from dashboard.maps import map_vocabulary

    def vocabulary(language):
        with translation.override(language):
            return map_vocabulary(towns=[], show_sharing=True)

    ja, en, zh = vocabulary("ja"), vocabulary("en"), vocabulary("zh-hans")
    assert (ja["rows"]["kind"], en["rows"]["kind"], zh["rows"]["kind"]) == ("種別", "Kind", "类型")
    assert (ja["words"]["details"], en["words"]["details"], zh["words"]["details"]) == ("詳細・グラフ", "Details and chart", "详情和图表")
    assert zh["sharing"]["region"] == "区域内共享"
    # Not translated in zh_Hans (yet): Japanese, as for every other string of a started catalog.
    assert catalog("zh_Hans", "django").find("falling", msgctxt="map popup").msgstr == ""
    assert zh["trends"]["falling"] == ["↓", "下降"] and en["trends"]["falling"] == ["↓", "falling"]
    # Level words are the level scheme's data, never the catalog's: still a (ja, en) pair.
    assert isinstance(zh["levels"]["3"]["title"], list) and len(zh["levels"]["3"]["title"]) == 2
