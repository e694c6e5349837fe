"""The HQ alert board in Chromium, as an operator uses it during a storm: it keeps keyboard focus and
a half-typed note through 10 live refreshes, cues a new alert and an escalation (sound, notification,
title counter, highlight, one sentence in the live region), is walked with the keyboard alone
(skip link, acknowledge with a note, resolve through a dialog that Escape closes), and axe-core finds
no violation on the board and the history in Japanese and English.

Screenshots: test-artifacts/alert-board-live.png, alert-board-dialog.png.
"""

import importlib
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from sensors.models import Visibility
from tenancy.models import Membership
from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, ROOT, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WATCHER = ("e2e-board-watch", "e2e-Board-watch-pass-5521")
HELPER = ("e2e-board-help", "e2e-Board-help-pass-6632")
NEIGHBOUR = ("e2e-board-b", "e2e-Board-b-pass-7743")
FIRST, SECOND, HIDDEN = "E2E-BOARD-1", "E2E-BOARD-2", "E2E-BOARD-B"
LIVE = "#mz-live-status.mz-live-live"
AXE = ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"
REFRESHES = 10

# Before any page script: count the beeps and the desktop notifications the board makes.
CUE_RECORDER = """
window.__beeps = 0;
window.__notifications = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () { window.__beeps += 1; return play.call(this).catch(() => {}); };
window.Notification = function (title, options) { window.__notifications.push(title + " " + options.body); };
window.Notification.permission = "granted";
window.Notification.requestPermission = () => Promise.resolve("granted");
"""
COUNT_PATCHES = """() => {
    window.__patches = 0;
    document.getElementById('mz-alert-board').addEventListener('mizumori:board-patched', () => { window.__patches += 1; });
}"""
FOCUS_KEY = "() => document.activeElement && document.activeElement.getAttribute('data-focus-key')"


@pytest.fixture
def storm(transactional_db):
    """Town A's two private river gauges (one already at level 3), a gateway token, two operators of
    town A, and town B with its own private gauge at level 5 that town A must never see."""
    from django.apps import apps

    for name in ("0002_seed_level_scheme_2021", "0007_trust_gauge_words"):
        importlib.import_module(f"alerts.migrations.{name}").seed(apps, None)
    town_a, town_b = make_town("990001", "town-a", "town a"), make_town("990043", "town-b", "town b")
    first = make_station(town_a, FIRST, visibility=Visibility.PRIVATE, lon=140.0, lat=35.0)
    make_station(town_a, SECOND, visibility=Visibility.PRIVATE, lon=140.1, lat=35.0)
    hidden = make_station(town_b, HIDDEN, visibility=Visibility.PRIVATE, lon=140.2, lat=35.0)
    for station, level, value in ((first, 3, 3.6), (hidden, 5, 5.2)):
        rule = AlertRule.objects.create(station=station, kind="threshold", name="Thresholds (reading)")
        now = timezone.now()
        alert = Alert.objects.create(
            station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now,
            last_value=value, last_observed_at=now,
        )
        AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=value, at=now)
    for (name, password), town in ((WATCHER, town_a), (HELPER, town_a), (NEIGHBOUR, town_b)):
        user = get_user_model().objects.create_user(name, password=password)
        Membership.objects.create(user=user, municipality=town, role=Membership.Role.OPERATOR)
    return {"token": ingest_token_create(municipality=town_a, label="e2e board gateway")[1]}


def log_in(browser, server, credentials, next_path, *, width=1280, height=900, init_script=None, language=None):
    page = browser.new_page(width=width, height=height)
    if language:  # else the browser's (Accept-Language)
        page.context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    # Ten refreshes and three logins on a machine shared with other jobs: waits fail on what never
    # comes, not on a slow answer.
    page.set_default_timeout(60_000)
    if init_script:
        page.add_init_script(init_script)
    return sign_in(page, server.url, credentials, next_path)


def tab_to(page, focus_key, *, limit=60):
    """Press Tab until the control with `focus_key` has focus (keyboard only); the presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUS_KEY) == focus_key:
            return presses
    raise AssertionError(f"{focus_key} not reached in {limit} Tab presses")


# A desktop reading English and a phone reading Japanese (issue 15: phone and desktop, ja and en).
@pytest.mark.parametrize("language,width,height", [("en", 1280, 600), ("ja", 390, 844)])
def test_the_board_keeps_focus_and_a_typed_note_through_ten_live_refreshes_and_cues_news(
    asgi_server, storm, browser, language, width, height
):
    board = log_in(browser, asgi_server, WATCHER, "/hq/alerts/", width=width, height=height, init_script=CUE_RECORDER,
                   language=language)
    board.wait_for_selector(LIVE)
    assert board.title().startswith("(1) ")
    assert board.locator(f"[data-row-key^='{HIDDEN}']").count() == 0
    board.evaluate(COUNT_PATCHES)
    note = board.locator(f"input[data-focus-key='note-{FIRST}:level']")
    note.focus()
    board.keyboard.type("見回り")
    helper = log_in(browser, asgi_server, HELPER, "/hq/alerts/")

    announced = []
    for refresh in range(REFRESHES):
        before = board.evaluate("window.__patches")
        if refresh == 3:
            # A second gauge crosses 氾濫危険水位: a new row, inserted above the focused one.
            asgi_server.post_readings(storm["token"], [(SECOND, 4.2)])
        elif refresh == 6:
            # The first gauge passes 氾濫発生: its row moves to the top and its cells change.
            asgi_server.post_readings(storm["token"], [(FIRST, 5.1)])
        else:
            helper.fill(f"input[data-focus-key='note-{FIRST}:level']", f"巡回 {refresh}")
            with helper.expect_navigation():
                helper.click(f"button[data-focus-key='notebtn-{FIRST}:level']")
        board.wait_for_function("(n) => window.__patches > n", arg=before)
        if refresh in (3, 6):
            code = SECOND if refresh == 3 else FIRST
            board.wait_for_function("(code) => document.getElementById('mz-alert-announcer').textContent.includes(code)", arg=code)
            announced.append(board.inner_text("#mz-alert-announcer"))
        assert board.evaluate(FOCUS_KEY) == f"note-{FIRST}:level", f"focus lost at refresh {refresh + 1}"
        assert note.input_value() == "見回り"

    keys = board.eval_on_selector_all("[data-row-key]", "rows => rows.map(r => r.dataset.rowKey)")
    assert keys == [f"{FIRST}:level", f"{SECOND}:level"]  # L5 first, then L4
    assert board.get_attribute(f"[data-row-key='{FIRST}:level']", "data-level") == "5"
    assert "mz-alert-fresh" in board.get_attribute(f"[data-row-key='{SECOND}:level']", "class")
    # In the page's language: only the news, never the unchanged refreshes.
    new, escalated = {"ja": ("新しいアラート", "レベル上昇"), "en": ("New alert", "Escalated")}[language]
    assert announced[0].startswith(new) and SECOND in announced[0]
    assert announced[1].startswith(escalated) and FIRST in announced[1]
    notifications = board.evaluate("window.__notifications")
    assert len(notifications) == 2 and SECOND in notifications[0] and FIRST in notifications[1]
    assert board.evaluate("window.__beeps") == 2
    assert board.title().startswith("(2) ")
    board.screenshot(path=str(ARTIFACTS / f"alert-board-live-{language}-{width}.png"))

    # Muted: the next escalation notifies but makes no sound, and the choice survives a reload.
    board.click("#mz-sound-toggle")
    assert board.get_attribute("#mz-sound-toggle", "aria-pressed") == "false"
    patches = board.evaluate("window.__patches")
    asgi_server.post_readings(storm["token"], [(SECOND, 5.3)])
    board.wait_for_function("(n) => window.__patches > n && window.__notifications.length === 3", arg=patches)
    assert board.evaluate("window.__beeps") == 2
    board.reload()
    assert board.get_attribute("#mz-sound-toggle", "aria-pressed") == "false"
    assert board.locator(f"[data-row-key^='{HIDDEN}']").count() == 0
    browser.assert_clean()


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 900)])
@pytest.mark.parametrize("language", ["ja", "en"])
def test_a_keyboard_only_walk_acknowledges_with_a_note_and_resolves_through_the_dialog(
    asgi_server, storm, browser, language, width, height
):
    board = log_in(browser, asgi_server, WATCHER, "/hq/alerts/", width=width, height=height, language=language)
    assert board.evaluate("document.documentElement.lang") == language
    board.wait_for_selector(LIVE)
    board.keyboard.press("Tab")
    board.keyboard.press("Tab")
    assert board.evaluate("document.activeElement.getAttribute('href')") == "#mz-alert-board"
    board.keyboard.press("Enter")
    tab_to(board, f"note-{FIRST}:level")
    board.keyboard.type("消防団に連絡済み")
    tab_to(board, f"ack-{FIRST}:level")
    # The acknowledgement is a form post: a new page, whose rows are there before its script (the
    # resolve dialog's) has run, so a Resolve pressed sooner takes the page's no-script path. Waited
    # for as a navigation, not by its row or load state: until the new page commits, the old one
    # still takes live messages, and the alert message of this very acknowledgement can patch its
    # row to "acknowledged" there first (its load event long past).
    with board.expect_navigation():
        board.keyboard.press("Enter")
    board.wait_for_selector(f"[data-row-key='{FIRST}:level'][data-state='acknowledged']")
    assert "消防団に連絡済み" in board.inner_text(f"[data-row-key='{FIRST}:level'] [data-cell=ack]")
    # The focus ring shows where the keyboard is.
    tab_to(board, f"resolve-{FIRST}:level")
    assert board.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    board.keyboard.press("Enter")
    dialog = board.locator("#mz-resolve-dialog")
    assert dialog.is_visible() and FIRST in board.inner_text("#mz-resolve-text")
    assert board.evaluate("document.activeElement.id") == "mz-resolve-cancel"
    board.screenshot(path=str(ARTIFACTS / f"alert-board-dialog-{language}-{width}.png"))
    board.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert board.evaluate(FOCUS_KEY) == f"resolve-{FIRST}:level"

    board.keyboard.press("Enter")
    board.keyboard.press("Tab")
    assert board.evaluate("document.activeElement.id") == "mz-resolve-confirm"
    board.keyboard.press("Enter")
    board.wait_for_selector("[data-row-key='none']")
    browser.assert_clean()


def run_axe(page) -> list[str]:
    page.evaluate(AXE.read_text())
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))"
    )
    return violations


@pytest.mark.parametrize("language", ["ja", "en"])
def test_axe_finds_no_violations_on_the_board_and_the_history(asgi_server, storm, browser, language):
    page = log_in(browser, asgi_server, WATCHER, "/hq/alerts/")
    page.wait_for_selector(LIVE)
    if language == "en":
        page.click("form.mz-lang-switch button[value=en]")
        page.wait_for_selector("html[lang=en]")
        page.wait_for_selector(LIVE)
    assert run_axe(page) == []
    # The resolve dialog, open.
    page.click(f"[data-focus-key='resolve-{FIRST}:level']")
    assert run_axe(page) == []
    page.keyboard.press("Escape")
    page.goto(f"{asgi_server.url}/hq/alerts/history/")
    assert run_axe(page) == []
    browser.expect_console_errors("status of 400")  # the page of a refused filter is a 400
    page.goto(f"{asgi_server.url}/hq/alerts/history/?level=9")
    assert run_axe(page) == []
    browser.assert_clean()


def test_axe_is_vendored_with_its_licence_and_never_served_to_pages():
    assert AXE.exists() and (AXE.parent / "LICENSE").exists()
    for template in Path(ROOT / "templates").rglob("*.html"):
        assert "axe-core" not in template.read_text(), template
